"""Volcano mode's allocation protocol on an in-memory API: the pod volcano placed, its entries
one container at a time, bind-phase and volcano's ``hamivgpu`` lock, failures. The same flow
runs on the real API server in e2e/tests/test_volcano.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from hami_common.deviceplugin.allocator import AllocationFailed, NoPendingPod
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.testing import allocate_request as request
from hami_common.k8s import EVENTS, NODES, PODS
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol import volcano as vc
from hami_common.telemetry import in_memory_tracing
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.volcano import VolcanoPolicy
from hami_plugin_nvidia.volcano_allocator import VolcanoAllocator

NODE = "n1"
LOCK = "2026-08-20T10:00:00Z"


def pod(name: str, devices: str, *, gpus: int = 1, vgpu_time: str = "100", **extra: Any) -> Any:
    """A pod as volcano-scheduler leaves it on the node: its annotations from the Binding."""
    ann = {
        vc.VGPU_NODE: NODE,
        vc.VGPU_TIME: vgpu_time,
        vc.BIND_TIME: vgpu_time,
        vc.VGPU_IDS: devices,
        vc.DEVICES_TO_ALLOCATE: devices,
        vc.BIND_PHASE: "allocating",
        **extra.pop("annotations", {}),
    }
    gpu = {"resources": {"limits": {vc.RESOURCE_NUMBER: "1", vc.RESOURCE_MEMORY: "1000"}}}
    containers = extra.pop("containers", None) or [{"name": f"c{i}", **gpu} for i in range(gpus)]
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": ann},
        "spec": {"nodeName": NODE, "containers": containers},
        "status": {"phase": extra.pop("phase", "Pending")},
    }


def setup(
    tmp: Path, *pods: Any, lock: str | None = LOCK
) -> tuple[FakeApiServer, VolcanoAllocator, Path]:
    kube = FakeApiServer()
    kube.add(
        NODES, {"metadata": {"name": NODE, "annotations": {vc.NODE_LOCK: lock} if lock else {}}}
    )
    for p in pods:
        kube.add(PODS, p)
    policy = VolcanoPolicy(NvidiaOptions(), hook_path=tmp, lock_dir=tmp / "lock")
    tracer = in_memory_tracing("test")[0].get_tracer("test")
    return kube, VolcanoAllocator(kube.client(), NODE, policy, tracer=tracer), tmp


def ann(kube: FakeApiServer, name: str) -> dict[str, str]:
    return dict(kube.obj(PODS, name, "ns")["metadata"]["annotations"])


def locked(kube: FakeApiServer) -> bool:
    return vc.NODE_LOCK in (kube.obj(NODES, NODE)["metadata"].get("annotations") or {})


def test_entries_one_container_at_a_time_then_success_and_the_lock_released(tmp_path: Path) -> None:
    kube, alloc, tmp = setup(
        tmp_path, pod("p", "GPU-a,NVIDIA,3000,50:;GPU-b,NVIDIA,4000,60:", gpus=2)
    )
    first = asyncio.run(alloc.allocate(request(1)))
    envs = first.container_responses[0].envs
    assert (envs["NVIDIA_VISIBLE_DEVICES"], envs["CUDA_DEVICE_MEMORY_LIMIT_0"]) == (
        "GPU-a",
        "3000m",
    )
    assert envs["CUDA_DEVICE_SM_LIMIT"] == "50"
    assert (tmp / "vgpu" / "limits" / "uid-p_c0.conf").exists()
    assert ann(kube, "p")[vc.DEVICES_TO_ALLOCATE] == ";GPU-b,NVIDIA,4000,60:"
    assert ann(kube, "p")[vc.BIND_PHASE] == "allocating"
    assert locked(kube)  # still allocating
    second = asyncio.run(alloc.allocate(request(1)))
    assert second.container_responses[0].envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "4000m"
    assert (tmp / "vgpu" / "limits" / "uid-p_c1.conf").exists()
    assert ann(kube, "p")[vc.DEVICES_TO_ALLOCATE] == ";"
    assert ann(kube, "p")[vc.BIND_PHASE] == "success"
    assert ann(kube, "p")[vc.VGPU_TIME] == "18446744073709551615"
    assert ann(kube, "p")[vc.VGPU_IDS] == "GPU-a,NVIDIA,3000,50:;GPU-b,NVIDIA,4000,60:"
    assert not locked(kube)


def test_entries_belong_to_the_containers_that_request_a_vgpu(tmp_path: Path) -> None:
    sidecar = {"name": "sidecar"}
    main = {"name": "main", "resources": {"limits": {vc.RESOURCE_MEMORY: "2000"}}}
    kube, alloc, tmp = setup(tmp_path, pod("p", "GPU-a,NVIDIA,2000,0:", containers=[sidecar, main]))
    asyncio.run(alloc.allocate(request(1)))
    assert (tmp / "vgpu" / "limits" / "uid-p_main.conf").exists()
    assert ann(kube, "p")[vc.DEVICES_TO_ALLOCATE] == ""
    assert ann(kube, "p")[vc.BIND_PHASE] == "success"


def test_the_pod_is_the_oldest_placed_here_with_that_many_devices(tmp_path: Path) -> None:
    two = "GPU-a,NVIDIA,1,0:GPU-b,NVIDIA,1,0:"
    kube, alloc, _ = setup(
        tmp_path,
        pod("newer", "GPU-a,NVIDIA,1,0:", vgpu_time="200"),
        pod("older", "GPU-b,NVIDIA,1,0:", vgpu_time="100"),
        pod("two", two, vgpu_time="50"),
        pod("elsewhere", "GPU-a,NVIDIA,1,0:", vgpu_time="1", annotations={vc.VGPU_NODE: "n2"}),
        pod("done", "GPU-a,NVIDIA,1,0:", vgpu_time="1", annotations={vc.BIND_PHASE: "success"}),
        pod("running", "GPU-a,NVIDIA,1,0:", vgpu_time="2", phase="Running"),
        lock=None,
    )
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "older")[vc.BIND_PHASE] == "success"
    assert ann(kube, "newer")[vc.BIND_PHASE] == "allocating"
    asyncio.run(alloc.allocate(request(2)))
    assert ann(kube, "two")[vc.BIND_PHASE] == "success"


def test_a_pod_whose_list_does_not_decode_does_not_take_anothers_allocate(
    tmp_path: Path,
) -> None:
    kube, alloc, _ = setup(
        tmp_path,
        pod("garbage", "GPU-a,NVIDIA,x,0:", vgpu_time="1"),
        pod("good", "GPU-a,NVIDIA,1,0:", vgpu_time="2"),
    )
    asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "good")[vc.BIND_PHASE] == "success"
    assert ann(kube, "garbage")[vc.BIND_PHASE] == "allocating"
    # alone, it is taken and failed with the reason
    with pytest.raises(AllocationFailed, match="Usedmem"):
        asyncio.run(alloc.allocate(request(1)))
    assert ann(kube, "garbage")[vc.BIND_PHASE] == "failed"


def test_no_pod_fails_the_call_and_releases_the_lock_as_volcanos_plugin_does(
    tmp_path: Path,
) -> None:
    kube, alloc, _ = setup(tmp_path, pod("p", "GPU-a,NVIDIA,1,0:"))
    with pytest.raises(NoPendingPod, match="no pod placed by volcano on node n1 with 3"):
        asyncio.run(alloc.allocate(request(3)))
    assert not locked(kube)
    assert ann(kube, "p")[vc.BIND_PHASE] == "allocating"  # another pod is not touched


@pytest.mark.parametrize(
    ("devices", "gpus", "counts", "message"),
    [
        ("GPU-a,NVIDIA,x,0:", 1, (1,), "volcano.sh/devices-to-allocate: volcano pod device"),
        ("GPU-a,NVIDIA,1,0:;GPU-b,NVIDIA,1,0:GPU-c,NVIDIA,1,0:", 2, (1, 1), "container 'c1' 2"),
        ("GPU-a,MLU,1,0:", 1, (1,), "type 'MLU'"),
        ("GPU-a,NVIDIA,1,0:;GPU-b,NVIDIA,1,0:", 1, (1, 1), "has an entry #1 but the pod has 1"),
    ],
)
def test_a_failure_marks_the_pod_records_an_event_and_releases_the_lock(
    devices: str, gpus: int, counts: tuple[int, ...], message: str, tmp_path: Path
) -> None:
    kube, alloc, _ = setup(tmp_path, pod("p", devices, gpus=gpus))
    with pytest.raises(AllocationFailed, match=message):
        asyncio.run(alloc.allocate(request(*counts)))
    assert ann(kube, "p")[vc.BIND_PHASE] == "failed"
    assert ann(kube, "p")[vc.VGPU_TIME] == vc.DONE_TIME
    assert ann(kube, "p")[vc.DEVICES_TO_ALLOCATE] == devices  # nothing was handed out
    assert not locked(kube)
    events = kube.of(EVENTS.plural)
    assert len(events) == 1
    assert events[0]["type"] == "Warning"
    assert "volcano.sh/vgpu-number on node n1" in events[0]["message"]


def test_a_conflicting_write_is_retried_on_the_fresh_pod(tmp_path: Path) -> None:
    kube, alloc, _ = setup(tmp_path, pod("p", "GPU-a,NVIDIA,1,0:"))
    writes = {"n": 0}

    def bump(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH" and "/pods/" in str(request.url) and writes["n"] == 0:
            writes["n"] += 1
            kube.obj(PODS, "p", "ns")["metadata"]["labels"] = {"touched": "yes"}
            kube.put("/api/v1/namespaces/ns/pods", kube.obj(PODS, "p", "ns"))
        return None  # the server answers, with the pod moved on

    kube.intercept = bump
    asyncio.run(alloc.allocate(request(1)))
    assert writes["n"] == 1
    assert ann(kube, "p")[vc.BIND_PHASE] == "success"
    assert kube.obj(PODS, "p", "ns")["metadata"]["labels"] == {"touched": "yes"}


def test_preferred_ids_are_replicas_of_volcanos_devices(tmp_path: Path) -> None:
    _, alloc, _ = setup(tmp_path, pod("p", "GPU-b,NVIDIA,1,0:"))
    req = pb.PreferredAllocationRequest(
        container_requests=[
            pb.ContainerPreferredAllocationRequest(
                available_deviceIDs=["GPU-a-0", "GPU-a-1", "GPU-b-0"], allocation_size=1
            )
        ]
    )
    physical = {"GPU-a-0": "GPU-a", "GPU-a-1": "GPU-a", "GPU-b-0": "GPU-b"}
    resp = asyncio.run(alloc.preferred(req, physical))
    assert list(resp.container_responses[0].deviceIDs) == ["GPU-b-0"]
