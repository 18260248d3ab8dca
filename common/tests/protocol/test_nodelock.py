"""The node lock's decisions, one HAMi failure mode per test (the API round trips are covered
by the end-to-end suites on the real API server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hami_common.protocol.annotations import BIND_PHASE, VGPU_NODE
from hami_common.protocol.nodelock import (
    Holder,
    LockValue,
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
