"""``explain``: a placed pod's devices and trace; a pending pod's reason from the extender's
explanation, or from its Events alone."""

from __future__ import annotations

import asyncio
from typing import Any

from hami_common.dra.testing import allocated_claim
from hami_common.k8s import EVENTS, PODS, RESOURCE_CLAIMS
from hami_common.k8s.testing import FakeApiServer
from hami_kubectl import explain

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def pod(name: str, node: str = "", **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "demo", "uid": f"uid-{name}",
                         "annotations": {"hami.io/trace-context":
                                         f"00-{TRACE}-00f067aa0ba902b7-01", **annotations}},
            "spec": {"containers": [{"name": "cuda"}], **({"nodeName": node} if node else {})},
            "status": {"phase": "Running" if node else "Pending"}}  # fmt: skip


class Explanations:
    def __init__(self, record: dict[str, Any] | None) -> None:
        self.record = record

    def explain(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.record


def run(api: FakeApiServer, name: str, extender: Any = None) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with api.client() as client:
            return await explain.explain(client, "demo", name, extender=extender,
                                         traces_url="http://jaeger:16686")  # fmt: skip

    return asyncio.run(go())


def test_placed_pod_devices_and_trace() -> None:
    api = FakeApiServer()
    allocation = {"hami.io/vgpu-devices-allocated": "GPU-a,NVIDIA,3000,30:;",
                  "hami.io/bind-phase": "success"}  # fmt: skip
    api.add(PODS, pod("one", "node-1", **allocation))
    doc = run(api, "one")
    assert doc["devices"] == [{"container": "cuda", "device": "GPU-a", "vendor": "NVIDIA",
                               "memoryMiB": 3000, "cores": 30}]  # fmt: skip
    assert doc["trace"] == {"id": TRACE, "url": f"http://jaeger:16686/trace/{TRACE}",
                            "api": f"http://jaeger:16686/api/v3/traces/{TRACE}"}  # fmt: skip
    text = explain.describe(doc)
    assert "Node:       node-1 (bind-phase success)" in text
    assert "cuda        GPU-a    NVIDIA   3000Mi   30%" in text


def test_pending_from_the_events_alone() -> None:
    api = FakeApiServer()
    api.add(PODS, pod("big"))
    message = ("no available node, 2 nodes do not meet: 2 devices CardInsufficientMemory, "
               "6 devices CardTypeMismatch")  # fmt: skip
    api.add(EVENTS, {"metadata": {"name": "big.1", "namespace": "demo"}, "reason":
                     "FilteringFailed", "message": message, "lastTimestamp": "2026-01-01T00:00:00Z",
                     "involvedObject": {"name": "big", "uid": "uid-big"}})  # fmt: skip
    doc = run(api, "big")
    assert (doc["pending"], doc["reason"], doc["summary"]) == (True, "CardTypeMismatch", message)
    assert "Reason:     CardTypeMismatch" in explain.describe(doc)


def test_pending_from_the_extender_with_each_nodes_reason() -> None:
    api = FakeApiServer()
    api.add(PODS, pod("big"))
    record = {"uid": "uid-big", "summary": "pending: no node fits", "steps": [
        {"step": "filter", "outcome": "unschedulable", "reasons": {"CardTypeMismatch": 8},
         "failed": {"n2": "4/4 CardTypeMismatch", "n1": "4/4 CardTypeMismatch"}}]}  # fmt: skip
    doc = run(api, "big", Explanations(record))
    assert doc["nodes"] == {"n1": "4/4 CardTypeMismatch", "n2": "4/4 CardTypeMismatch"}
    text = explain.describe(doc)
    assert "  NODE   REASON\n  n1     4/4 CardTypeMismatch\n  n2     4/4 CardTypeMismatch" in text
    stale = dict(record, uid="uid-an-earlier-pod")
    assert "nodes" not in run(api, "big", Explanations(stale))


def test_a_dra_pod_shows_its_claims_allocation_and_the_schedulers_reason() -> None:
    api = FakeApiServer()
    placed = pod("dra", "node-1")
    placed["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t"}]
    placed["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "dra-gpu"}]
    api.add(PODS, placed)
    claim = allocated_claim("dra-gpu", namespace="demo", driver="gpu.hami.io", pool="node-1",
                            devices=[("gpu-1", {"memory": "3000Mi", "cores": "30"})])  # fmt: skip
    api.add(RESOURCE_CLAIMS, claim)
    doc = run(api, "dra")
    assert doc["claims"] == [{"claim": "dra-gpu", "state": "allocated", "driver": "gpu.hami.io",
                              "node": "node-1", "device": "gpu-1", "shareID": "dra-gpu-share-0",
                              "memoryMiB": 3000, "cores": 30}]  # fmt: skip
    text = explain.describe(doc)
    assert "Claims:     (DRA: what kube-scheduler allocated)" in text
    assert text.split("Claims:")[1].splitlines()[2].split() == [
        "dra-gpu", "node-1", "gpu-1", "3000Mi", "30%"
    ]  # fmt: skip

    waiting = pod("big")
    waiting["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t"}]
    message = "0/3 nodes are available: 3 cannot allocate all claims."
    waiting["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    ]
    api.add(PODS, waiting)
    # the extender's DRA answer (hami_extender.dra_explain) does not hide kube-scheduler's reason
    said = {"uid": "uid-big", "path": "dra", "steps": [],
            "summary": "pending: DRA claims wait on kube-scheduler's allocation"}  # fmt: skip
    doc = run(api, "big", Explanations(said))
    assert (doc["pending"], doc["reason"]) == (True, "Unschedulable")
    assert "cannot allocate all claims" in doc["summary"]
    assert doc["claims"] == [{"claim": "gpu", "state": "not created yet"}]
