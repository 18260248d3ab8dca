"""Volcano mode's policy: what volcano-scheduler reads of the node (registration, resources)
and the Allocate answer (the HAMi path's, memory units converted to MiB)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import hami_rustcore
import pytest
from hami_common.deviceplugin.backend import PhysicalDevice
from hami_common.deviceplugin.vendor import ContainerContext
from hami_common.protocol import volcano
from hami_common.settings import SettingsError
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.policy import LIMITS_FILE
from hami_plugin_nvidia.volcano import VolcanoPolicy

T4 = PhysicalDevice("GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448", 0, "Tesla T4", 15360)
A100 = PhysicalDevice("GPU-8d9c4ba8", 1, "NVIDIA A100-SXM4-80GB", 81920, healthy=False)


def _policy(tmp: Path, memory_factor: int = 1, **options: Any) -> VolcanoPolicy:
    return VolcanoPolicy(
        NvidiaOptions(**options),
        memory_factor=memory_factor,
        hook_path=tmp / "hook",
        lock_dir=tmp / "vgpulock",
        cache_id=lambda ctx: f"cache-{ctx.index}",
    )


def test_registers_in_volcanos_format_only(tmp_path: Path) -> None:
    policy = _policy(tmp_path, split_count=10, topology_score=True)
    annotations = policy.node_annotations([T4, A100], {})
    # what volcano-vgpu-device-plugin's EncodeNodeDevices writes for these GPUs
    assert annotations == {
        volcano.NODE_REGISTER: "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,10,15360,"
        "NVIDIA-Tesla T4,true,hami-core:GPU-8d9c4ba8,10,81920,NVIDIA A100-SXM4-80GB,false,"
        "hami-core:"
    }
    assert policy.register_annotation == "volcano.sh/node-vgpu-register"


def test_advertises_volcanos_three_resources(tmp_path: Path) -> None:
    policy = _policy(tmp_path, split_count=4, core_scaling=1.5, memory_scaling=2.0)
    assert policy.resource_name == "volcano.sh/vgpu-number"
    assert policy.split_count == 4
    capacity = {r.resource_name: r for r in policy.capacity_resources()}
    assert set(capacity) == {"volcano.sh/vgpu-memory", "volcano.sh/vgpu-cores"}
    assert capacity["volcano.sh/vgpu-memory"].replicas(T4) == 30720
    assert capacity["volcano.sh/vgpu-cores"].replicas(T4) == 150
    sockets = {policy.socket_name, *(r.socket_name for r in capacity.values())}
    assert len(sockets) == 3  # three plugins on one kubelet


def test_memory_factor_counts_units_and_answers_in_mib(tmp_path: Path) -> None:
    policy = _policy(tmp_path, memory_factor=10)
    registered = hami_rustcore.decode_volcano_node_devices(
        policy.node_annotations([T4], {})[volcano.NODE_REGISTER]
    )
    assert registered[0].devmem == 1536
    memory = next(r for r in policy.capacity_resources() if r.resource_name.endswith("memory"))
    assert memory.replicas(T4) == 1536
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {}}
    ctx = ContainerContext(
        pod, 0, {"name": "main"}, [hami_rustcore.AllocDevice(T4.uuid, "NVIDIA", 300, 25)], ["x"]
    )
    resp = policy.container_response(ctx)
    assert resp.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "3000m"
    assert resp.envs["CUDA_DEVICE_SM_LIMIT"] == "25"
    assert resp.envs["NVIDIA_VISIBLE_DEVICES"] == T4.uuid
    limits = tmp_path / "hook" / "vgpu" / "limits" / "u1_main.conf"
    assert "CUDA_DEVICE_MEMORY_LIMIT_0=3000m" in limits.read_text()
    mount = next(m for m in resp.mounts if m.container_path == LIMITS_FILE)
    assert mount.read_only
    assert mount.host_path == str(limits)


def test_more_memory_ids_than_kubelet_receives_names_the_factor_that_fits(
    tmp_path: Path,
) -> None:
    gpus = [dataclasses.replace(A100, uuid=f"GPU-{i}", healthy=True) for i in range(8)]
    with pytest.raises(SettingsError, match=r"655360 volcano\.sh/vgpu-memory IDs at factor 1") as e:
        _policy(tmp_path).check_memory_ids(gpus)
    assert "--gpu-memory-factor 11 or more" in str(e.value.problems)
    _policy(tmp_path, memory_factor=11).check_memory_ids(gpus)  # 59578 IDs


def test_a_factor_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="memory factor 0"):
        _policy(tmp_path, memory_factor=0)
