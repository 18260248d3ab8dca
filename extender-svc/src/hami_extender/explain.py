"""The last decisions per pod, kept in memory for ``GET /api/v1/explain/{namespace}/{pod}``:
"why is this pod pending, or why did it land there". Bounded: the oldest pods are forgotten,
and each pod keeps its last few steps, each with at most `MAX_NODE_REASONS` per-node reasons
(the per-reason counts are always complete)."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from typing import Any

import orjson

MAX_STEPS = 8
MAX_NODE_REASONS = 100
SPAN_NODE_REASONS = 20


def failure_summary(
    candidates: int, failed_count: int, failed_head: dict[str, str], reasons: dict[str, int]
) -> dict[str, Any]:
    """The filter span's attributes about rejected nodes: cost bounded whatever the node count
    (the counts by reason, and only the first `SPAN_NODE_REASONS` per-node reasons)."""
    by_node = dict(itertools.islice(failed_head.items(), SPAN_NODE_REASONS))
    return {
        "hami.filter.candidates": candidates,
        "hami.filter.failed_count": failed_count,
        "hami.filter.failed_nodes": orjson.dumps(by_node).decode(),
        "hami.filter.reasons": orjson.dumps(reasons).decode(),
    }


class Explanations:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pods: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def record(self, namespace: str, name: str, uid: str, step: dict[str, Any]) -> None:
        key = f"{namespace}/{name}"
        entry = self._pods.pop(key, None)
        if entry is None or entry["uid"] != uid:
            entry = {"namespace": namespace, "pod": name, "uid": uid, "steps": []}
        step["time"] = time.time()
        failed = step.get("failed")
        if isinstance(failed, dict):  # given whole, or only its head (then nodes_failed counts)
            total = max(len(failed), step.get("nodes_failed", 0))
            if len(failed) > MAX_NODE_REASONS:
                step["failed"] = dict(itertools.islice(failed.items(), MAX_NODE_REASONS))
            if total > len(step["failed"]):
                step["failed_truncated"] = total - len(step["failed"])
        entry["steps"] = [*entry["steps"][-(MAX_STEPS - 1) :], step]
        self._pods[key] = entry
        while len(self._pods) > self.capacity:
            self._pods.popitem(last=False)

    def get(self, namespace: str, name: str, uid: str | None = None) -> dict[str, Any] | None:
        """The pod's record with its summary; with ``uid``, only if it is that pod's (not an
        earlier pod's of the same name)."""
        entry = self._pods.get(f"{namespace}/{name}")
        if entry is None or (uid is not None and entry["uid"] != uid):
            return None
        return {**entry, "summary": summarize(entry["steps"])}


def summarize(steps: list[dict[str, Any]]) -> str:
    """One sentence a user can act on."""
    if not steps:
        return "no decision recorded"
    last = steps[-1]
    verb, outcome = last.get("step"), last.get("outcome")
    if verb == "filter" and outcome == "placed":
        return (
            f"placed on node {last['node']} (devices {last.get('devices')}); "
            "waiting for kube-scheduler's bind"
        )
    if verb == "filter" and outcome == "unschedulable":
        reasons = ", ".join(f"{n} {r}" for r, n in sorted((last.get("reasons") or {}).items()))
        return (
            f"pending: no node fits ({last.get('nodes_failed', 0)} nodes rejected"
            f"{': ' + reasons if reasons else ''})"
        )
    if verb == "bind" and outcome == "bound":
        return f"bound to node {last['node']}"
    return f"{verb} {outcome}: {last.get('error', '')}".strip()


NOT_FILTERED = "NotFilteredYet"


def pending_reason(entry: dict[str, Any] | None) -> str:
    """One word for why a pod that no node has taken yet is still waiting, from its recorded
    steps: the failure reason most nodes gave at its last filter (HAMi's strings,
    ``CardInsufficientMemory``), or where it stands (``NotFilteredYet``, ``WaitingForBind``,
    ``BindFailed``, ``OtherScheduler``)."""
    steps = (entry or {}).get("steps") or []
    if not steps:
        return NOT_FILTERED
    last = steps[-1]
    step, outcome = last.get("step"), last.get("outcome")
    if step == "filter" and outcome == "unschedulable":
        reasons = last.get("reasons") or {}
        if reasons:
            return str(max(reasons.items(), key=lambda kv: (kv[1], kv[0]))[0])
        return "NoNodeRegistered" if last.get("nodes_failed") else "NoCandidateNodes"
    if step == "filter" and outcome == "placed":
        return "WaitingForBind"
    if step == "filter" and outcome == "refused":
        return "OtherScheduler"
    if step == "bind" and outcome == "failed":
        return "BindFailed"
    return "Binding"
