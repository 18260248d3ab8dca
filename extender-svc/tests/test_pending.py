"""The pods of our scheduler that no node has taken: from a metadata watch, and their reason."""

from __future__ import annotations

import asyncio

import pytest
from hami_common.k8s import PODS
from hami_common.k8s.testing import FakeApiServer
from hami_extender.explain import Explanations, pending_reason
from hami_extender.pending import PendingPods


def pod(name: str, scheduler: str = "hami-scheduler", node: str = "") -> dict[str, object]:
    spec = {"schedulerName": scheduler, **({"nodeName": node} if node else {})}
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp":
                         "2026-01-01T00:00:00Z"}, "spec": spec}  # fmt: skip


def test_lists_only_unbound_pods_of_our_scheduler() -> None:
    api = FakeApiServer()
    api.add(PODS, pod("waiting"))
    api.add(PODS, pod("bound", node="n1"))
    api.add(PODS, pod("theirs", scheduler="default-scheduler"))

    async def go() -> set[str]:
        async with api.client() as client:
            pending = PendingPods(client, "hami-scheduler")
            task = asyncio.create_task(pending.run())
            try:
                await asyncio.wait_for(pending.synced.wait(), 5)
                return {p.name for p in pending.pods.values()}
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

    assert asyncio.run(go()) == {"waiting"}


def test_events_add_and_remove() -> None:
    pending = PendingPods(FakeApiServer().client(), "hami-scheduler")
    waiting = {"metadata": {"uid": "u1", "name": "a", "namespace": "ns"}}
    pending.apply("SYNC", {"items": []})
    pending.apply("ADDED", waiting)
    assert set(pending.pods) == {"u1"}
    deleting = {"metadata": {**waiting["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    pending.apply("MODIFIED", deleting)
    assert pending.pods == {}
    pending.apply("ADDED", waiting)
    pending.apply("DELETED", waiting)  # bound: it left the selector
    assert pending.pods == {}


def test_reasons() -> None:
    ex = Explanations(10)
    assert pending_reason(ex.get("ns", "a")) == "NotFilteredYet"
    ex.record("ns", "a", "u", {"step": "filter", "outcome": "unschedulable",
                               "reasons": {"CardInsufficientMemory": 3, "CardTypeMismatch": 1},
                               "nodes_failed": 4})  # fmt: skip
    assert pending_reason(ex.get("ns", "a")) == "CardInsufficientMemory"
    assert ex.get("ns", "a", uid="another") is None  # a new pod of the same name
    ex.record("ns", "a", "u", {"step": "filter", "outcome": "placed", "node": "n"})
    assert pending_reason(ex.get("ns", "a")) == "WaitingForBind"
    ex.record("ns", "a", "u", {"step": "bind", "outcome": "failed", "error": "x"})
    assert pending_reason(ex.get("ns", "a")) == "BindFailed"


def _meta(uid: str) -> dict[str, object]:
    return {"metadata": {"uid": uid, "name": uid, "namespace": "ns"}}


def test_the_backlog_is_the_pending_pods_not_answered_yet() -> None:
    """A pod the filter answered (placed: its reservation holds room already; or fits nowhere)
    is no longer part of the burst to come; a pod that leaves the pending set leaves both."""
    pending = PendingPods(FakeApiServer().client(), "hami-scheduler")
    pending.apply("SYNC", {"items": [_meta(f"u{i}") for i in range(5)]})
    assert pending.backlog("u0") == 4  # the others
    assert pending.backlog("elsewhere") == 5
    pending.answered("u0")
    pending.answered("u1")
    assert pending.backlog("u2") == 2  # u3, u4
    assert pending.backlog("u0") == 3  # asked again (a retry): the unanswered three
    pending.apply("DELETED", _meta("u0"))  # bound: it left the selector
    pending.apply("DELETED", _meta("u3"))
    assert pending.backlog("u2") == 1
    pending.apply("ADDED", _meta("u0"))  # pending again (a failed bind): not answered anew
    assert pending.backlog("u2") == 2


def test_an_answer_before_the_watch_shows_the_pod_still_counts() -> None:
    pending = PendingPods(FakeApiServer().client(), "hami-scheduler")
    pending.apply("SYNC", {"items": []})
    pending.answered("late")  # filtered before the ADDED event arrived
    pending.apply("ADDED", _meta("late"))
    pending.apply("ADDED", _meta("other"))
    assert pending.backlog("x") == 1
    pending.answered("gone")  # never seen, then a relist without it: forgotten
    pending.apply("SYNC", {"items": [_meta("late"), _meta("other")]})
    assert pending.backlog("x") == 1
    assert pending._early == set()
