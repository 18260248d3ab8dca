"""Golden files for what other programs read: the register annotation of a spec'd node and the
Allocate answers. Regenerate with ``UPDATE_GOLDEN=1`` and review the diff."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import hami_rustcore
import pytest
from google.protobuf.json_format import MessageToDict
from hami_common.deviceplugin.testing import FakeBackend, device_spec
from hami_common.deviceplugin.vendor import ContainerContext
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.checkpoint import Checkpoint
from hami_common.dra.testing import allocated_claim
from hami_common.k8s import RESOURCE_CLAIMS
from hami_common.k8s.testing import FakeApiServer
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.dra.devices import DRIVER_NAME, slice_devices
from hami_plugin_nvidia.dra.driver import NvidiaDraDriver
from hami_plugin_nvidia.policy import NvidiaPolicy

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def _policy(tmp: Path, **options: Any) -> NvidiaPolicy:
    return NvidiaPolicy(
        NvidiaOptions(**options),
        hook_path=tmp / "hook",
        lock_dir=tmp / "vgpulock",
        cache_id=lambda ctx: f"cache-{ctx.index}",
    )


def test_register_annotation_of_a_specd_node(tmp_path: Path) -> None:
    spec = device_spec(4, node="node-a", numa_nodes=2, nvlinks=2)
    spec["devices"][0]["model"] = "NVIDIA A100-SXM4-80GB"
    spec["devices"][0]["memory_mib"] = 81920
    spec["devices"][3]["fail"] = "query"
    spec["devices"][2]["links"]["GPU-node-a-0001"] = {"p2p": "HostBridge", "nvlinks": 0}
    backend = FakeBackend(spec)
    devices = backend.discover()
    policy = _policy(tmp_path, split_count=10, memory_scaling=1.5, topology_score=True)
    asymmetric: list[list[tuple[str, str]]] = []
    policy.on_asymmetric = asymmetric.append
    healthy = [d for d in devices if d.healthy]
    annotations = policy.node_annotations(devices, backend.links(healthy))
    check_golden("register-annotations.json", json.dumps(annotations, indent=1) + "\n")
    # the failed device is registered unhealthy, not dropped, and the scheduler can read it
    decoded = hami_rustcore.decode_node_devices(annotations["hami.io/node-nvidia-register"])
    assert [d.health for d in decoded] == [True, True, True, False]
    assert decoded[0].type == "NVIDIA A100-SXM4-80GB"
    assert decoded[1].type == "NVIDIA-Tesla V100-PCIE-32GB"
    assert decoded[1].devmem == int(32768 * 1.5)
    assert asymmetric == [[("GPU-node-a-0001", "GPU-node-a-0002")]]


def _pod(
    containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": containers, "initContainers": init or []},
    }


CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "one-gpu": ({}, {"name": "main"}, "GPU-a,NVIDIA,3000,30:"),
    "two-gpus-scaled-priority": (
        {"memory_scaling": 2.0, "lib_cuda_log_level": 3, "gpu_core_policy": "force"},
        {"name": "train", "resources": {"limits": {"nvidia.com/priority": "0"}}},
        "GPU-a,NVIDIA,1000,0:GPU-b,NVIDIA,2000,0:",
    ),
    "disable-control": (
        {"disable_core_limit": True},
        {"name": "free", "env": [{"name": "CUDA_DISABLE_CONTROL", "value": "true"}]},
        "GPU-a,NVIDIA,0,100:",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_allocate_answers(case: str, tmp_path: Path) -> None:
    options, container, entry = CASES[case]
    policy = _policy(tmp_path, **options)
    devices = hami_rustcore.decode_pod_devices(entry + ";")[0]
    ctx = ContainerContext(_pod([container]), 0, container, devices, ["x"] * len(devices))
    resp = policy.container_response(ctx)
    answer = MessageToDict(resp, preserving_proto_field_name=True)
    text = json.dumps(answer, indent=1, sort_keys=True).replace(str(tmp_path), "<tmp>") + "\n"
    check_golden(f"allocate-{case}.json", text)
    # the limits file the hook reads: the same limits, read-only, outside the writable folder
    limits = tmp_path / "hook" / "vgpu" / "limits" / f"uid-1_{container['name']}.conf"
    assert limits.stat().st_mode & 0o777 == 0o444
    lines = dict(
        line.split("=", 1) for line in limits.read_text().splitlines() if not line.startswith("#")
    )
    for key, value in resp.envs.items():
        if key.startswith(("CUDA_DEVICE_", "CUDA_TASK", "GPU_CORE")):
            assert lines[key] == value
    disabled = container.get("env") == [{"name": "CUDA_DISABLE_CONTROL", "value": "true"}]
    assert lines["CUDA_DISABLE_CONTROL"] == ("true" if disabled else "false")
    preload = [m for m in resp.mounts if m.container_path == "/etc/ld.so.preload"]
    assert bool(preload) != disabled


def test_dra_slice_devices_and_the_cdi_spec_of_a_two_gpu_claim(tmp_path: Path) -> None:
    """What the scheduler reads (the ResourceSlice's devices) and what the container runtime
    reads (the claim's CDI spec), host paths shown under ``<root>``."""
    spec = device_spec(2, node="node-a")
    spec["devices"][1]["model"] = "NVIDIA A100-SXM4-80GB"
    spec["devices"][1]["memory_mib"] = 81920
    devices = FakeBackend(spec).discover()
    options = NvidiaOptions(split_count=10, memory_scaling=1.5, gpu_core_policy="force")
    check_golden(
        "dra-slice-devices.json", json.dumps(slice_devices(devices, options), indent=1) + "\n"
    )
    api = FakeApiServer()
    api.add(RESOURCE_CLAIMS, allocated_claim(
        "c", uid="uid-c", driver=DRIVER_NAME, pool="node-a",
        devices=[("gpu-0", {"memory": "3000Mi", "cores": "30", "shares": "1"}),
                 ("gpu-1", {"memory": "20Gi", "cores": "30", "shares": "1"})],
    ))  # fmt: skip
    policy = NvidiaPolicy(options, hook_path=tmp_path / "hook", lock_dir=tmp_path / "vgpulock")

    async def prepare() -> None:
        async with api.client() as client:
            driver = NvidiaDraDriver(client, "node-a", policy, devices,
                                     Checkpoint(tmp_path / "checkpoint.json"),
                                     cdi_dir=tmp_path / "cdi")  # fmt: skip
            await driver.prepare(dra.Claim(namespace="default", name="c", uid="uid-c"))

    asyncio.run(prepare())
    text = (tmp_path / "cdi" / "hami.io-gpu_uid-c.json").read_text()
    check_golden("dra-cdi-spec.json", text.replace(str(tmp_path), "<root>"))
