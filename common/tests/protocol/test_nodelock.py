"""The node lock's decisions, one HAMi failure mode per test (the API round trips are covered
by the end-to-end suites on the real API server), and its use of a watched copy of the node."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hami_common.k8s import NODES
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import BIND_PHASE, NODE_LOCK, VGPU_NODE
from hami_common.protocol.nodelock import (
    Holder,
    LockValue,
    acquire,
    format_lock,
    holder_state,
    parse_lock,
)

NOW = datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)


def pod(
    name: str, *, node: str | None = "n1", phase: str = "Pending", bind_phase: str | None = None
) -> dict[str, Any]:
    annotations = {VGPU_NODE: "n1"}
    if bind_phase:
        annotations[BIND_PHASE] = bind_phase
    return {
        "metadata": {"namespace": "default", "name": name, "annotations": annotations},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase},
    }


def test_value_is_hami_format_and_round_trips() -> None:
    value = format_lock(NOW, "default", "gpu-pod")
    assert value == "2026-08-21T06:20:39Z,default,gpu-pod"
    assert parse_lock(value) == LockValue(NOW, "default", "gpu-pod")
    assert parse_lock("2026-08-21T06:20:39Z") == LockValue(NOW, "", "")
    assert parse_lock("garbage") is None
    assert parse_lock("2026-08-21T06:20:39Z,default") is None


def test_hami_1433_owner_is_an_exact_match_not_a_substring() -> None:
    lock = LockValue(NOW, "default", "my-gpu-pod")
    assert not lock.owned_by("default", "gpu-pod")
    assert not lock.owned_by("fault", "my-gpu-pod")
    assert lock.owned_by("default", "my-gpu-pod")


def test_hami_3096_a_live_holder_keeps_the_lock_however_old() -> None:
    # HAMi expires the lock after 5 minutes and hands it on while its holder still waits for
    # Allocate, so two pods take each other's limits. An old lock of a live holder stays live.
    lock = LockValue(NOW - timedelta(hours=2), "default", "slow")
    assert holder_state(lock, pod("slow"), "n1", NOW) is Holder.LIVE
    # Reserved on the node but not bound yet (the extender locks before the Binding): live.
    assert holder_state(lock, pod("slow", node=None), "n1", NOW) is Holder.LIVE


def test_hami_2214_a_lock_whose_allocation_ended_is_stale() -> None:
    lock = LockValue(NOW, "default", "p")
    assert holder_state(lock, pod("p", bind_phase="failed"), "n1", NOW) is Holder.STALE
    assert holder_state(lock, pod("p", bind_phase="success"), "n1", NOW) is Holder.STALE
    assert holder_state(lock, pod("p", phase="Failed"), "n1", NOW) is Holder.STALE
    assert holder_state(lock, None, "n1", NOW) is Holder.STALE


def test_holder_on_another_node_or_deleted_is_stale() -> None:
    lock = LockValue(NOW, "default", "p")
    assert holder_state(lock, pod("p", node="n2"), "n1", NOW) is Holder.STALE
    deleting = pod("p")
    deleting["metadata"]["deletionTimestamp"] = "2026-08-21T06:00:00Z"
    assert holder_state(lock, deleting, "n1", NOW) is Holder.STALE


def test_legacy_lock_without_owner_expires_after_five_minutes() -> None:
    assert holder_state(LockValue(NOW, "", ""), None, "n1", NOW) is Holder.LIVE
    old = LockValue(NOW - timedelta(minutes=6), "", "")
    assert holder_state(old, None, "n1", NOW) is Holder.STALE
    assert holder_state(None, None, "n1", NOW) is Holder.STALE


def _nodes(lock: str | None = None) -> FakeApiServer:
    """One node ``n1`` on the shared in-memory API server (merge patches with a
    resourceVersion precondition answer 409 when stale; every request is recorded)."""
    api = FakeApiServer()
    api.add(NODES, {"metadata": {"name": "n1", "annotations": {NODE_LOCK: lock} if lock else {}}})
    return api


def _calls(api: FakeApiServer) -> list[str]:
    return [method for method, _ in api.requests]


def _lock(api: FakeApiServer) -> str | None:
    return (api.obj(NODES, "n1")["metadata"].get("annotations") or {}).get(NODE_LOCK)


def test_acquire_from_a_watched_copy_skips_the_read_and_survives_a_stale_one() -> None:
    fresh = _nodes()
    taken = asyncio.run(_acquire(fresh, copy.deepcopy(fresh.obj(NODES, "n1"))))
    assert _calls(fresh) == ["PATCH"]  # no GET: the watch's copy was current
    assert _lock(fresh) == format_lock(NOW, "default", "p")
    # as the write left it (metadata only, as asked): the caller's next copy
    assert taken["metadata"] == fresh.obj(NODES, "n1")["metadata"]
    stale = _nodes()
    seen = copy.deepcopy(stale.obj(NODES, "n1"))
    stale.put("/api/v1/nodes", stale.obj(NODES, "n1"))  # moved on since the watch saw it
    asyncio.run(_acquire(stale, seen))
    assert _calls(stale) == ["PATCH", "GET", "PATCH"]
    assert _lock(stale) == format_lock(NOW, "default", "p")


def test_acquire_judges_a_lock_on_a_fresh_read_not_the_watched_copy() -> None:
    api = _nodes()
    rv = api.obj(NODES, "n1")["metadata"]["resourceVersion"]
    seen = {"metadata": {"resourceVersion": rv, "annotations": {NODE_LOCK: "x,default,gone"}}}
    asyncio.run(_acquire(api, seen))
    assert _calls(api) == ["GET", "PATCH"]  # the copy said locked; the API said free


async def _acquire(api: FakeApiServer, known: dict[str, Any]) -> dict[str, Any]:
    async with api.client() as client:
        return await acquire(client, "n1", "default", "p", now=NOW, known=known)
