"""The explanation store: the last steps per pod, bounded, and a sentence a user can act on."""

from __future__ import annotations

from hami_extender.explain import MAX_NODE_REASONS, MAX_STEPS, Explanations


def test_pending_then_placed_then_bound() -> None:
    ex = Explanations(10)
    reasons = {"CardInsufficientMemory": 3, "CardTypeMismatch": 1}
    ex.record("ns", "p", "u", {"step": "filter", "outcome": "unschedulable", "nodes_failed": 2,
                               "reasons": reasons})  # fmt: skip
    got = ex.get("ns", "p")
    assert got is not None
    assert got["summary"] == (
        "pending: no node fits (2 nodes rejected: 3 CardInsufficientMemory, 1 CardTypeMismatch)"
    )
    ex.record(
        "ns",
        "p",
        "u",
        {"step": "filter", "outcome": "placed", "node": "n1", "devices": "g,NVIDIA,1,1:;"},
    )
    got = ex.get("ns", "p")
    assert got is not None
    assert got["summary"].startswith("placed on node n1 (devices g,NVIDIA,1,1:;)")
    ex.record("ns", "p", "u", {"step": "bind", "outcome": "bound", "node": "n1", "error": ""})
    got = ex.get("ns", "p")
    assert got is not None
    assert got["summary"] == "bound to node n1"
    assert [s["outcome"] for s in got["steps"]] == ["unschedulable", "placed", "bound"]
    assert all("time" in s for s in got["steps"])


def test_a_failed_bind_says_why() -> None:
    ex = Explanations(10)
    ex.record("ns", "p", "u", {"step": "bind", "outcome": "failed", "error": "node n1 is locked"})
    got = ex.get("ns", "p")
    assert got is not None
    assert got["summary"] == "bind failed: node n1 is locked"


def test_bounded_per_pod_per_step_and_in_pods() -> None:
    ex = Explanations(2)
    failed = {f"n{i:03d}": "CardInsufficientMemory" for i in range(MAX_NODE_REASONS + 50)}
    for i in range(MAX_STEPS + 3):
        ex.record("ns", "p", "u", {"step": "filter", "outcome": "unschedulable", "i": i,
                                   "failed": dict(failed)})  # fmt: skip
    got = ex.get("ns", "p")
    assert got is not None
    assert [s["i"] for s in got["steps"]] == list(range(3, MAX_STEPS + 3))
    assert len(got["steps"][-1]["failed"]) == MAX_NODE_REASONS
    assert got["steps"][-1]["failed_truncated"] == 50
    ex.record("ns", "q", "u2", {"step": "filter", "outcome": "placed", "node": "n"})
    ex.record("ns", "r", "u3", {"step": "filter", "outcome": "placed", "node": "n"})
    assert ex.get("ns", "p") is None  # the oldest pod is forgotten first
    assert ex.get("ns", "r") is not None


def test_a_new_pod_with_the_same_name_starts_afresh() -> None:
    ex = Explanations(10)
    ex.record("ns", "p", "old", {"step": "bind", "outcome": "bound", "node": "n1"})
    ex.record("ns", "p", "new", {"step": "filter", "outcome": "placed", "node": "n2"})
    got = ex.get("ns", "p")
    assert got is not None
    assert (got["uid"], len(got["steps"])) == ("new", 1)
