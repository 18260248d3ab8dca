"""The runtime hands the entry point's tracer provider to the allocator: the Allocate span of a
kubelet call lands in that provider's exporter (no module-level tracer, no global provider)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.runtime import PluginRuntime, RuntimeOptions
from hami_common.deviceplugin.testing import FakeBackend, device_spec
from hami_common.deviceplugin.vendor import ContainerContext
from hami_common.k8s import NODES, PODS
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import BIND_PHASE, BIND_TIME, NODE_LOCK, VGPU_NODE
from hami_common.telemetry import TRACE_CONTEXT_ANNOTATION, in_memory_tracing

from .test_server import Policy

NODE = "n1"
KEY = "hami.io/vgpu-devices-to-allocate"
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class AllocatingPolicy(Policy):
    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        return pb.ContainerAllocateResponse(envs={"DEVICES": ctx.devices[0].uuid})


def _kube() -> FakeApiServer:
    kube = FakeApiServer()
    kube.add(NODES, {"metadata": {"name": NODE, "annotations": {
        NODE_LOCK: "2026-01-01T00:00:00Z,ns,p"}}})  # fmt: skip
    annotations = {
        KEY: "GPU-a,NVIDIA,3000,30:;", VGPU_NODE: NODE, BIND_PHASE: "allocating",
        BIND_TIME: "100", TRACE_CONTEXT_ANNOTATION: PARENT,
    }  # fmt: skip
    kube.add(PODS, {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": annotations},
        "spec": {"nodeName": NODE, "containers": [{"name": "cuda"}]},
        "status": {"phase": "Pending"},
    })  # fmt: skip
    return kube


def test_allocate_spans_go_to_the_provider_the_entry_point_passed(tmp_path: Path) -> None:
    provider, exporter = in_memory_tracing("hami-plugin-test")
    kube = _kube()
    runtime = PluginRuntime(
        AllocatingPolicy(),
        FakeBackend(device_spec(1, node=NODE)),
        kube.client(),
        RuntimeOptions(node=NODE, plugin_dir=tmp_path),
        tracer_provider=provider,
    )
    request = pb.AllocateRequest(
        container_requests=[pb.ContainerAllocateRequest(devices_ids=["GPU-a-0"])]
    )
    answer = asyncio.run(runtime.service.Allocate(request, None))  # type: ignore[arg-type]
    assert answer.container_responses[0].envs["DEVICES"] == "GPU-a"
    [span] = exporter.get_finished_spans()
    assert span.name == "Allocate"
    assert span.resource.attributes["service.name"] == "hami-plugin-test"
    assert format(span.context.trace_id, "032x") == PARENT.split("-")[1]
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT.split("-")[2]
    attributes = dict(span.attributes or {})
    assert attributes["k8s.pod.name"] == "p"
    assert attributes["k8s.namespace.name"] == "ns"
    assert attributes["k8s.node.name"] == NODE
    assert attributes["hami.allocate.devices"] == "GPU-a,NVIDIA,3000,30:;"
    assert attributes["hami.allocate.containers"] == ("cuda",)
    assert attributes["hami.allocate.bind_phase"] == "success"
    provider.shutdown()
