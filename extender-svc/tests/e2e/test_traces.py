"""One trace per placement, read back from the real trace store: every service of the stack
(webhook, extender, the real NVIDIA plugin process) exports OTLP to the cluster's Jaeger, and
each pod's trace is fetched from Jaeger's query API by the trace id on the pod
(``hami.io/trace-context``).

The tree: the admission span is the root (the API server does not trace here); filter, bind and
Allocate are its children, each from its own service. A pod that stays pending has a trace whose
filter span says why.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import hami_rustcore as core
import pytest
from hami_common.k8s import PODS, KubeClient
from hami_common.protocol.annotations import BIND_PHASE
from hami_common.telemetry import pod_trace_id
from hami_e2e.jaeger import JaegerQuery, Trace
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.nodes import NodePool
from hami_e2e.stack import HamiStack
from hami_e2e.waiting import eventually
from hami_extender.testing import ALLOCATED, gpu_pod

pytestmark = pytest.mark.e2e
Json = dict[str, Any]
T4 = {"model": "NVIDIA-Tesla-T4", "device_memory_mib": 15360}
LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"}
PLACEMENT = ("admission", "filter", "bind", "Allocate")
SERVICES = {
    "admission": "hami-webhook",
    "filter": "hami-extender",
    "bind": "hami-extender",
    "Allocate": "hami-plugin-nvidia",
}


async def _allocated(kube: KubeClient, ns: str, name: str) -> Json:
    async def done() -> Json | None:
        pod = await kube.get(PODS, name, namespace=ns)
        return pod if pod["metadata"]["annotations"].get(BIND_PHASE) == "success" else None

    pod: Json = await eventually(done)
    return pod


def _assert_placement_tree(trace: Trace, ns: str, pod: str, node: str, devices: str) -> None:
    spans = {name: trace.span(name) for name in PLACEMENT}  # exactly one of each
    for name, span in spans.items():
        assert span.service == SERVICES[name], (name, span.service)
        assert span.trace_id == trace.trace_id
        assert span.attributes["k8s.pod.name"] == pod, name
        assert span.attributes["k8s.namespace.name"] == ns, name
        assert span.status_code != 2, (name, span.status_message)  # not ERROR
    admission = spans["admission"]
    assert admission.parent_id == ""  # the root: nothing upstream traces here
    for name in ("filter", "bind", "Allocate"):
        assert spans[name].parent_id == admission.span_id, name
    assert admission.attributes["hami.admission.allowed"] is True
    assert admission.attributes["hami.admission.has_devices"] is True
    placed = spans["filter"].attributes
    assert placed["hami.filter.node"] == node
    assert placed["hami.filter.devices"] == devices
    # the rejected node is counted by reason, and named with its reason
    assert json.loads(placed["hami.filter.reasons"]).get("CardTypeMismatch", 0) >= 1
    assert placed["hami.filter.failed_count"] >= 1
    assert placed["hami.filter.candidates"] >= 2
    assert spans["bind"].attributes["k8s.node.name"] == node
    assert spans["bind"].attributes["hami.bind.devices"] == devices
    allocate = spans["Allocate"].attributes
    assert allocate["k8s.node.name"] == node
    assert allocate["hami.allocate.devices"] == devices
    assert allocate["hami.allocate.containers"] == ["cuda"]
    assert allocate["hami.allocate.bind_phase"] == "success"


def _traces_naming(query: JaegerQuery, ns: str, since: datetime) -> dict[str, set[str]]:
    """pod name -> the trace ids of every span of this namespace's pods, in every service."""
    found: dict[str, set[str]] = {}
    for service in sorted(set(SERVICES.values())):
        for span in query.find(service, since - timedelta(seconds=5)):
            if span.attributes.get("k8s.namespace.name") == ns:
                found.setdefault(str(span.attributes.get("k8s.pod.name")), set()).add(span.trace_id)
    return found


def test_each_pod_has_one_trace_from_admission_to_allocate(
    hami_stack: HamiStack, hami_ns: str, gpu_nodes: Any
) -> None:
    [t4] = gpu_nodes(NodePool(name="trace-t4", count=1, devices_per_node=2, **T4), agents=False)
    [v100] = gpu_nodes(NodePool(name="trace-v100", count=1, devices_per_node=2))
    assert hami_stack.cluster.traces_url is not None, "the cluster has no trace store"
    query = JaegerQuery(hami_stack.cluster.traces_url)
    since = datetime.now(UTC)
    wants_t4 = {"nvidia.com/use-gputype": "T4"}

    async def main() -> dict[str, Json]:
        pods: dict[str, Json] = {}
        async with GpuNode(hami_stack.cluster, t4) as gpu, hami_stack.client() as kube:
            await gpu.wait_registered()
            for name in ("one", "two"):  # one after the other: each bind finds the lock free
                await kube.create(PODS, gpu_pod(name, LIMITS, wants_t4), namespace=hami_ns)
                result = await gpu.kubelet.wait_allocation(hami_ns, name, "cuda", within=90)
                assert result.error is None, result.error
                pods[name] = await _allocated(kube, hami_ns, name)
            await kube.create(
                PODS, gpu_pod("pending", LIMITS, {"nvidia.com/use-gputype": "A100"}),
                namespace=hami_ns,
            )  # fmt: skip

            async def filtered() -> Json | None:
                pod = await kube.get(PODS, "pending", namespace=hami_ns)
                conditions = (pod.get("status") or {}).get("conditions") or []
                unschedulable = any(c.get("reason") == "Unschedulable" for c in conditions)
                return pod if unschedulable else None

            pods["pending"] = await eventually(filtered)
            assert not pods["pending"]["spec"].get("nodeName")
        return pods

    pods = asyncio.run(main())
    trace_ids = {name: pod_trace_id(pod) for name, pod in pods.items()}
    assert all(trace_ids.values()), trace_ids
    assert len(set(trace_ids.values())) == 3  # one trace per pod
    for name in ("one", "two"):
        trace_id = str(trace_ids[name])
        trace = query.wait_trace(trace_id, lambda t: t.has(*PLACEMENT))
        [[device]] = core.decode_pod_devices(pods[name]["metadata"]["annotations"][ALLOCATED])
        devices = core.encode_pod_devices([[device]])
        assert pods[name]["spec"]["nodeName"] == t4
        _assert_placement_tree(trace, hami_ns, name, t4, devices)

    pending = query.wait_trace(str(trace_ids["pending"]), lambda t: t.has("admission", "filter"))
    assert not pending.named("bind")
    assert not pending.named("Allocate")
    admission = pending.span("admission")
    for span in pending.named("filter"):  # the scheduler may have retried: each says why
        assert span.parent_id == admission.span_id
        assert span.attributes["hami.filter.node"] == ""
        reasons = json.loads(span.attributes["hami.filter.reasons"])
        assert reasons.get("CardTypeMismatch", 0) >= 2  # the T4 node and the V100 node
        failed = json.loads(span.attributes["hami.filter.failed_nodes"])
        assert "CardTypeMismatch" in failed[t4]
        assert "CardTypeMismatch" in failed[v100]
        assert "CardTypeMismatch" in span.attributes["hami.filter.message"]

    # exactly one trace per pod: no span of these pods in any other trace, in any service
    assert _traces_naming(query, hami_ns, since) == {n: {str(t)} for n, t in trace_ids.items()}
