"""volcano's node lock (``hamivgpu``): taken as volcano-scheduler's ``LockNode`` takes it,
released as volcano's device plugin releases it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hami_common.k8s import NODES
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol import volcano as vc

NOW = datetime(2026, 8, 20, 10, 0, 0, tzinfo=UTC)


def node(kube: FakeApiServer, lock: str | None = None) -> None:
    kube.add(
        NODES, {"metadata": {"name": "n1", "annotations": {vc.NODE_LOCK: lock} if lock else {}}}
    )


def lock_of(kube: FakeApiServer) -> str | None:
    return (kube.obj(NODES, "n1")["metadata"].get("annotations") or {}).get(vc.NODE_LOCK)


def test_the_value_is_gos_rfc3339() -> None:
    assert vc.format_lock(NOW) == "2026-08-20T10:00:00Z"
    assert vc.parse_lock("2026-08-20T18:00:00+08:00") == NOW
    assert vc.parse_lock("2026-08-20T10:00:00Z,ns,pod") is None
    assert vc.parse_lock("2026-08-20T10:00:00") is None  # no zone: not RFC 3339


def test_take_sets_the_time_and_a_young_lock_refuses() -> None:
    kube = FakeApiServer()
    node(kube)
    asyncio.run(vc.take_lock(kube.client(), "n1", now=NOW))
    assert lock_of(kube) == "2026-08-20T10:00:00Z"
    with pytest.raises(vc.NodeLocked, match="locked within 5 minutes"):
        asyncio.run(vc.take_lock(kube.client(), "n1", now=NOW + timedelta(minutes=4)))


@pytest.mark.parametrize(("lock", "taken"), [("2026-08-20T09:54:59Z", True), ("garbage", False)])
def test_an_expired_lock_is_taken_over_and_garbage_is_not(lock: str, taken: bool) -> None:
    kube = FakeApiServer()
    node(kube, lock)
    if taken:
        asyncio.run(vc.take_lock(kube.client(), "n1", now=NOW))
        assert lock_of(kube) == "2026-08-20T10:00:00Z"
    else:
        with pytest.raises(vc.NodeLocked):
            asyncio.run(vc.take_lock(kube.client(), "n1", now=NOW))
        assert lock_of(kube) == lock


def test_release_deletes_any_lock_and_reports_it() -> None:
    kube = FakeApiServer()
    node(kube, "2026-08-20T10:00:00Z")
    assert asyncio.run(vc.release_lock(kube.client(), "n1")) is True
    assert lock_of(kube) is None
    assert asyncio.run(vc.release_lock(kube.client(), "n1")) is False


def test_release_with_a_stale_copy_decides_on_a_fresh_read() -> None:
    kube = FakeApiServer()
    node(kube, "2026-08-20T10:00:00Z")
    stale = {"metadata": {"name": "n1", "resourceVersion": "1", "annotations": {}}}
    assert asyncio.run(vc.release_lock(kube.client(), "n1", known=stale)) is True
    assert lock_of(kube) is None
