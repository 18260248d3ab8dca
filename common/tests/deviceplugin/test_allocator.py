"""The allocation protocol (pod lookup, entries, bind-phase, lock release, failures), on an
in-memory API; the same flows run on the real API server in e2e."""

from __future__ import annotations

import asyncio
from typing import Any

import hami_rustcore
import pytest
from hami_common.deviceplugin.allocator import AllocationFailed, Allocator, NoPendingPod
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.runtime import to_allocate_keys
from hami_common.deviceplugin.testing import allocate_request as request
from hami_common.deviceplugin.vendor import ContainerContext
from hami_common.k8s import NODES, PODS
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import BIND_PHASE, BIND_TIME, NODE_LOCK, VGPU_NODE
from hami_common.telemetry import TRACE_CONTEXT_ANNOTATION, in_memory_tracing

from .test_server import Policy as ServerPolicy

NODE = "n1"
KEY = "hami.io/vgpu-devices-to-allocate"
LOCK = "2026-01-01T00:00:00Z,ns,{}"


class Policy(ServerPolicy):
    """The framework tests' policy, answering Allocate: it records each container it answered
    and refuses a container whose env sets ``REFUSE``."""

    resource_name = "nvidia.com/gpu"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[ContainerContext] = []

    def container_response(self, ctx: ContainerContext) -> pb.ContainerAllocateResponse:
        if ctx.env().get("REFUSE"):
            raise ValueError(f"container {ctx.container_name!r}: refused")
        self.seen.append(ctx)
        resp = pb.ContainerAllocateResponse()
        resp.envs["DEVICES"] = ",".join(f"{d.uuid}/{d.usedmem}" for d in ctx.devices)
        return resp


def pod(
    name: str, devices: str, *, containers: int = 1, init: int = 0, **extra: Any
) -> dict[str, Any]:
    ann = {KEY: devices, VGPU_NODE: NODE, BIND_PHASE: "allocating", BIND_TIME: "100"}
    ann.update(extra.pop("annotations", {}))
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": ann},
        "spec": {
            "nodeName": extra.pop("node", NODE),
            "initContainers": [{"name": f"i{i}"} for i in range(init)],
            "containers": [
                {"name": f"c{i}", "env": extra.get("env", [])} for i in range(containers)
            ],
        },
        "status": {"phase": extra.pop("phase", "Pending")},
    }


def setup(
    *pods: dict[str, Any], lock: str | None = None
) -> tuple[FakeApiServer, Allocator, Policy]:
    kube = FakeApiServer()
    kube.add(NODES, {"metadata": {"name": NODE, "annotations": {NODE_LOCK: lock} if lock else {}}})
    for p in pods:
        kube.add(PODS, p)
    policy = Policy()
    allocator = Allocator(
        kube.client(),
        NODE,
        policy,  # type: ignore[arg-type]
        to_allocate_keys=to_allocate_keys(),
        tracer=in_memory_tracing("test")[0].get_tracer("test"),
    )
    return kube, allocator, policy


def ann(kube: FakeApiServer, name: str) -> dict[str, str]:
    return dict(kube.obj(PODS, name, "ns")["metadata"]["annotations"])


def test_lock_holder_gets_its_entries_one_container_at_a_time() -> None:
    kube, alloc, policy = setup(
        pod("p", "GPU-a,NVIDIA,3000,50:;GPU-b,NVIDIA,4000,60:;", containers=2),
        lock=LOCK.format("p"),
    )
    first = asyncio.run(alloc.allocate(request(1)))
    assert first.container_responses[0].envs["DEVICES"] == "GPU-a/3000"
    assert ann(kube, "p")[KEY] == ";GPU-b,NVIDIA,4000,60:;"
    assert ann(kube, "p")[BIND_PHASE] == "allocating"
    assert NODE_LOCK in kube.obj(NODES, NODE)["metadata"]["annotations"]  # still allocating
    second = asyncio.run(alloc.allocate(request(1)))
    assert second.container_responses[0].envs["DEVICES"] == "GPU-b/4000"
    assert ann(kube, "p")[KEY] == ";;"
    assert ann(kube, "p")[BIND_PHASE] == "success"
    assert NODE_LOCK not in kube.obj(NODES, NODE)["metadata"]["annotations"]
    assert [c.container_name for c in policy.seen] == ["c0", "c1"]


def test_init_containers_come_first_and_empty_entries_are_skipped() -> None:
    kube, alloc, policy = setup(
        pod("p", ";GPU-a,NVIDIA,1,2:;GPU-b,NVIDIA,3,4:;", containers=2, init=1),
        lock=LOCK.format("p"),
    )
    asyncio.run(alloc.allocate(request(1, 1)))
    assert [c.container_name for c in policy.seen] == ["c0", "c1"]
    assert [c.index for c in policy.seen] == [1, 2]
    assert ann(kube, "p")[BIND_PHASE] == "success"


def test_without_a_lock_the_pending_pod_bound_here_is_found() -> None:
    kube, alloc, _ = setup(
        pod("done", ";", phase="Running"),
        pod("elsewhere", "GPU-z,NVIDIA,1,1:;", node="n2"),
        pod("running", "GPU-y,NVIDIA,1,1:;", phase="Running"),
        pod("target", "GPU-a,NVIDIA,1,1:;"),
    )
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "target")[BIND_PHASE] == "success"
    assert ann(kube, "running")[KEY] == "GPU-y,NVIDIA,1,1:;"
    # a scheduler that keeps the node lock in memory: one node read, one list, the pod's
    # patch; no second read of the node to release a lock nobody took
    calls = [(m, u.split("/api/v1/", 1)[1].split("?")[0]) for m, u in kube.requests]
    assert calls == [("GET", "nodes/n1"), ("GET", "pods"), ("PATCH", "namespaces/ns/pods/target")]


def test_a_pod_reported_running_before_allocate_is_found_after_the_pending_ones() -> None:
    # kwok (and any stand-in for kubelet's status) may report Running before Allocate; with no
    # lock naming an owner (Cambricon's has none) the pod is still found, Pending ones first
    kube, alloc, _ = setup(pod("early", "GPU-a,NVIDIA,1,1:;", phase="Running"),
                           pod("done", "GPU-b,NVIDIA,1,1:;", phase="Succeeded"))  # fmt: skip
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "early")[BIND_PHASE] == "success"
    assert ann(kube, "done")[BIND_PHASE] == "allocating"


def test_a_stale_lock_holder_without_devices_falls_back_to_the_pending_pod() -> None:
    kube, alloc, _ = setup(
        pod("old", ";", annotations={BIND_PHASE: "success"}),
        pod("new", "GPU-a,NVIDIA,1,1:;"),
        lock=LOCK.format("old"),
    )
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "new")[BIND_PHASE] == "success"


def test_no_pod_changes_nothing() -> None:
    kube, alloc, _ = setup(
        pod("running", "GPU-a,NVIDIA,1,1:;", phase="Running", annotations={BIND_TIME: "1"})
    )
    kube.obj(PODS, "running", "ns")["metadata"]["annotations"].pop(BIND_PHASE)
    with pytest.raises(NoPendingPod, match="no binding pod found on node n1"):
        asyncio.run(alloc.allocate(request(1)))
    assert kube.patches == []


@pytest.mark.parametrize(
    ("devices", "counts", "env", "message"),
    [
        ("GPU-a,NVIDIA:;", (1,), [], "expected UUID,Type,Usedmem,Usedcores"),
        ("GPU-a,NVIDIA,1,1:;", (2,), [], "device number not matched"),
        ("GPU-a,NVIDIA,1,1:;", (1, 1), [], "no container entry left"),
        ("GPU-a,MLU,1,1:;", (1,), [], "expected 'NVIDIA'"),
        ("GPU-a,NVIDIA,1,1:;", (1,), [{"name": "REFUSE", "value": "1"}], "refused"),
    ],
)
def test_failures_mark_the_pod_failed_record_an_event_and_release_the_lock(
    devices: str, counts: tuple[int, ...], env: list[dict[str, str]], message: str
) -> None:
    kube, alloc, _ = setup(
        pod("bad", devices, env=env),
        pod("other", "GPU-b,NVIDIA,1,1:;", node="n2"),
        lock=LOCK.format("bad"),
    )
    other = ann(kube, "other")
    with pytest.raises(AllocationFailed, match=message):
        asyncio.run(alloc.allocate(request(*counts)))
    assert ann(kube, "bad")[BIND_PHASE] == "failed"
    assert ann(kube, "bad")[KEY] == devices
    assert NODE_LOCK not in kube.obj(NODES, NODE)["metadata"]["annotations"]
    [event] = kube.of("events")
    assert event["reason"] == "HAMiAllocationFailed"
    assert event["involvedObject"]["name"] == "bad"
    assert message in event["message"]
    assert ann(kube, "other") == other


def test_success_waits_for_the_other_vendors_entries() -> None:
    mlu = "hami.io/cambricon-mlu-devices-to-allocate"
    kube, alloc, _ = setup(
        pod("p", "GPU-a,NVIDIA,1,1:;", annotations={mlu: "MLU-a,MLU,1,1:;"}),
        lock=LOCK.format("p"),
    )
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "p")[BIND_PHASE] == "allocating"
    assert NODE_LOCK in kube.obj(NODES, NODE)["metadata"]["annotations"]


def test_success_waits_for_a_vendor_this_plugin_does_not_know() -> None:
    # an Ascend chip is no built-in vendor: its to-allocate key is found by its shape
    npu = "hami.io/Ascend910B3-devices-to-allocate"
    kube, alloc, _ = setup(
        pod("p", "GPU-a,NVIDIA,1,1:;", annotations={npu: "vdie-0,Ascend910B3,16384,0:;"}),
        lock=LOCK.format("p"),
    )
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "p")[BIND_PHASE] == "allocating"
    kube.obj(PODS, "p", "ns")["metadata"]["annotations"][npu] = ";"
    kube.obj(PODS, "p", "ns")["metadata"]["annotations"][KEY] = "GPU-b,NVIDIA,1,1:;"
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "p")[BIND_PHASE] == "success"


def test_the_vendors_annotations_ride_on_the_patch_and_its_lock_is_released() -> None:
    kube, alloc, policy = setup(pod("p", "GPU-a,NVIDIA,1,1:;"), lock=LOCK.format("p"))
    policy.extra_annotations = {"CAMBRICON_DSMLU_ASSIGNED": "true"}
    writes = len(kube.patches)
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "p")["CAMBRICON_DSMLU_ASSIGNED"] == "true"
    assert ann(kube, "p")[BIND_PHASE] == "success"
    assert len([p for p in kube.patches[writes:] if p[0] == PODS.plural]) == 1  # one write
    assert policy.released == ["p"]
    kube, alloc, policy = setup(pod("bad", "GPU-a,NVIDIA,1,1:;", env=[
        {"name": "REFUSE", "value": "1"}]), lock=LOCK.format("bad"))  # fmt: skip
    with pytest.raises(AllocationFailed):
        asyncio.run(alloc.allocate(request(1)))
    assert policy.released == ["bad"]  # a failed allocation never leaks the vendor's lock


def test_a_lock_held_by_another_pod_is_not_released() -> None:
    kube, alloc, _ = setup(pod("p", "GPU-a,NVIDIA,1,1:;"), lock=LOCK.format("someone-else"))
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "p")[BIND_PHASE] == "success"
    assert kube.obj(NODES, NODE)["metadata"]["annotations"][NODE_LOCK] == LOCK.format(
        "someone-else"
    )


def test_preferred_allocation_picks_replicas_of_the_annotated_devices() -> None:
    _, alloc, _ = setup(pod("p", "GPU-b,NVIDIA,1,1:GPU-c,NVIDIA,1,1:;"), lock=LOCK.format("p"))
    available = [f"GPU-{u}-{i}" for u in "abc" for i in range(2)]
    req = pb.PreferredAllocationRequest(
        container_requests=[
            pb.ContainerPreferredAllocationRequest(available_deviceIDs=available, allocation_size=2)
        ]
    )
    physical = {d: d.rsplit("-", 1)[0] for d in available}
    resp = asyncio.run(alloc.preferred(req, physical))
    assert list(resp.container_responses[0].deviceIDs) == ["GPU-b-0", "GPU-c-0"]


def test_concurrent_calls_are_serialised() -> None:
    kube, alloc, _ = setup(
        pod("p", "GPU-a,NVIDIA,1,1:;GPU-b,NVIDIA,2,2:;", containers=2), lock=LOCK.format("p")
    )

    async def both() -> list[pb.AllocateResponse]:
        return list(await asyncio.gather(alloc.allocate(request(1)), alloc.allocate(request(1))))

    answers = asyncio.run(both())
    got = sorted(a.container_responses[0].envs["DEVICES"] for a in answers)
    assert got == ["GPU-a/1", "GPU-b/2"]
    assert ann(kube, "p")[BIND_PHASE] == "success"
    assert hami_rustcore.decode_pod_devices(ann(kube, "p")[KEY]) == [[], []]


def test_allocate_is_a_span_in_the_pods_trace() -> None:
    provider, exporter = in_memory_tracing("test")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    kube, _, policy = setup(
        pod("p", "GPU-a,NVIDIA,1,1:;", annotations={TRACE_CONTEXT_ANNOTATION: parent}),
        lock=LOCK.format("p"),
    )
    alloc = Allocator(
        kube.client(),
        NODE,
        policy,  # type: ignore[arg-type]
        to_allocate_keys=to_allocate_keys(),
        tracer=provider.get_tracer("test"),
    )
    asyncio.run(alloc.allocate(request(1)))
    [span] = exporter.get_finished_spans()
    assert span.name == "Allocate"
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.attributes is not None
    assert span.attributes["k8s.pod.name"] == "p"
    provider.shutdown()
