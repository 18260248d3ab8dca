"""Dynamic MIG on the node: the fake GPU's geometry and NVML error codes, what a mixed node
registers, the scheduler's reservation turned into instances at Allocate (MIG UUIDs visible,
the runtime identity written back), adoption after a restart, and reclaim when pods end."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hami_rustcore as hc
import pytest
from hami_common.deviceplugin.testing import FakeBackend
from hami_common.deviceplugin.vendor import ContainerContext
from hami_common.protocol.annotations import MIG_ALLOCATIONS
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.mig import (
    CHART_VALUE,
    NVML_ERROR_INSUFFICIENT_RESOURCES,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    FakeMig,
    MigError,
    MigManager,
    enable_idle,
    held_placements,
)
from hami_plugin_nvidia.policy import REGISTER_ANNOTATION, NvidiaPolicy

A100 = "NVIDIA A100-SXM4-40GB"
ALLOW = ((("A100-SXM4-40GB",), ("1g.5gb", "2g.10gb", "3g.20gb")),)


def test_fake_geometry_answers_with_nvmls_error_codes() -> None:
    fake = FakeMig({"GPU-m": A100})
    fake.create("GPU-m", "3g.20gb", 4, 4)
    for args, code in [
        (("GPU-m", "3g.20gb", 2, 4), NVML_ERROR_INVALID_ARGUMENT),  # not a legal placement
        (("GPU-m", "1g.5gb", 5, 1), NVML_ERROR_INSUFFICIENT_RESOURCES),  # overlaps 4..8
        (("GPU-x", "1g.5gb", 0, 1), NVML_ERROR_NOT_SUPPORTED),  # not in MIG mode
    ]:
        with pytest.raises(MigError) as err:
            fake.create(*args)
        assert err.value.code == code
    with pytest.raises(MigError) as err:
        fake.destroy("GPU-m", 9)
    assert err.value.code == NVML_ERROR_NOT_FOUND


def node(tmp: Path) -> tuple[NvidiaPolicy, FakeMig, list[hc.Device]]:
    spec = {"devices": [
        {"uuid": "GPU-m", "index": 0, "model": A100, "memory_mib": 40960, "mode": "mig"},
        {"uuid": "GPU-s", "index": 1, "model": A100, "memory_mib": 40960},
        {"uuid": "GPU-t", "index": 2, "model": "Tesla T4", "memory_mib": 15360, "mode": "mig"},
    ]}  # fmt: skip
    devices = FakeBackend(spec).discover()
    fake = FakeMig({d.uuid: d.model for d in devices if d.mode == "mig"})
    options = NvidiaOptions(operating_mode="mig", mig_allowlist=ALLOW, memory_scaling=2.0)
    policy = NvidiaPolicy(options, hook_path=tmp, lock_dir=tmp / "lock", mig=MigManager(fake))
    text = policy.node_annotations(devices, {})[REGISTER_ANNOTATION]
    return policy, fake, hc.decode_node_devices(text)


def test_a_mixed_node_registers_mig_and_shared_gpus(tmp_path: Path) -> None:
    _, _, registered = node(tmp_path)
    # The T4 has no MIG geometry: not registered (HAMi). The shared GPU keeps its scaling.
    assert [(d.id, d.mode, d.count, d.devmem, d.devcore) for d in registered] == [
        ("GPU-m", "mig", 7, 40960, 100),
        ("GPU-s", "hami-core", 10, 81920, 100),
    ]
    profiles = json.loads(registered[0].mig_profiles_json or "[]")
    assert [p["name"] for p in profiles] == ["1g.5gb", "2g.10gb", "3g.20gb"]
    assert profiles[0]["core"] == 15
    assert profiles[2]["placements"] == [{"size": 4, "start": 0}, {"size": 4, "start": 4}]


def allocate(policy: NvidiaPolicy, pod: dict[str, Any]) -> tuple[str, dict[str, str]]:
    devices = hc.decode_pod_devices(pod["metadata"]["annotations"]["to-allocate"])[0]
    ctx = ContainerContext(pod, 0, pod["spec"]["containers"][0], devices, ["x"])
    resp = policy.container_response(ctx)
    return resp.envs["NVIDIA_VISIBLE_DEVICES"], policy.allocated_annotations(pod, [ctx])


def test_reservation_to_instances_adopted_after_restart_and_reclaimed(tmp_path: Path) -> None:
    policy, fake, registered = node(tmp_path)
    cluster = hc.Cluster()
    cluster.set_node("n1", registered)
    container = hc.ContainerRequest([hc.DeviceRequest("NVIDIA", 2, mem_mib=9000)])
    request = hc.PodRequest("u1", "ns", "p", [container], {"nvidia.com/vgpu-mode": "mig"})
    result = cluster.filter(request, ["n1"])
    assert result.node == "n1"
    pod: dict[str, Any] = {
        "metadata": {"uid": "u1", "name": "p", "namespace": "ns", "annotations": {
            "to-allocate": hc.encode_pod_devices(result.devices),
            MIG_ALLOCATIONS: result.annotations[MIG_ALLOCATIONS]}},
        "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"},
    }  # fmt: skip
    visible, written = allocate(policy, pod)
    made = fake.instances("GPU-m")
    assert sorted((i.profile, i.start, i.size) for i in made) == [
        ("2g.10gb", 0, 2), ("2g.10gb", 2, 2)
    ]  # fmt: skip
    entries = json.loads(written[MIG_ALLOCATIONS])
    assert visible == ",".join(e["migUUID"] for e in entries)
    assert {e["migUUID"] for e in entries} == {i.mig_uuid for i in made}
    assert all("gpuInstanceID" in e and "computeInstanceID" in e for e in entries)
    # A restarted plugin (new policy and manager, same GPUs) adopts what is there: same UUIDs,
    # nothing made twice, whether or not the runtime identity was written back.
    for annotation in (result.annotations[MIG_ALLOCATIONS], written[MIG_ALLOCATIONS]):
        again, _, _ = node(tmp_path)
        again.mig = MigManager(fake)
        pod["metadata"]["annotations"][MIG_ALLOCATIONS] = annotation
        assert allocate(again, pod)[0] == visible
    assert fake.created == 2
    # Reclaim keeps what a live pod reserves, and destroys the rest once the pod ended; what
    # this plugin just made or adopted is kept a grace period (a pass lists pods, then
    # instances: a pod placed in between is not in its list).
    assert again.mig.reclaim(["GPU-m"], set()) == []
    manager = MigManager(fake)
    assert manager.reclaim(["GPU-m"], held_placements([pod])) == []
    pod["status"]["phase"] = "Succeeded"
    gone = manager.reclaim(["GPU-m"], held_placements([pod]))
    assert len(gone) == 2
    assert fake.instances("GPU-m") == []


def test_a_bad_or_missing_reservation_fails_the_pod_with_a_message(tmp_path: Path) -> None:
    policy, _, _ = node(tmp_path)
    pod: dict[str, Any] = {
        "metadata": {"uid": "u2", "annotations": {"to-allocate": "GPU-m,NVIDIA,4864,15:"}},
        "spec": {"containers": [{"name": "c"}]},
    }
    with pytest.raises(ValueError, match=r"without hami\.io/vgpu-mig-allocations"):
        allocate(policy, pod)
    bad = '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-m","profile":"1g.5gb",' \
          '"placement":{"start":0,"size":3}}]'  # fmt: skip
    pod["metadata"]["annotations"][MIG_ALLOCATIONS] = bad
    with pytest.raises(ValueError, match=r"MIG instance: 1g\.5gb cannot be placed at 0\+3"):
        allocate(policy, pod)


def test_no_permission_names_the_chart_value_that_grants_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin container that is not privileged lacks the MIG config capability: NVML refuses
    to make or destroy instances (NO_PERMISSION). The pod's Allocate error and the plugin's log
    (an error) name the chart value that grants it, and so does a reclaim pass's warning."""
    policy, fake, _ = node(tmp_path)
    kept = fake.create("GPU-m", "1g.5gb", 6, 1)  # made while it could (say, by an operator)
    fake.permitted = False
    entry = '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-m","profile":"1g.5gb",' \
            '"placement":{"start":0,"size":1}}]'  # fmt: skip
    pod: dict[str, Any] = {
        "metadata": {"uid": "u3", "annotations": {"to-allocate": "GPU-m,NVIDIA,4864,15:",
                                                  MIG_ALLOCATIONS: entry}},
        "spec": {"containers": [{"name": "c"}]},
    }  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="hami_plugin_nvidia.mig"):
        with pytest.raises(ValueError, match=rf"NVML error 4\): .*{CHART_VALUE}=true") as err:
            allocate(policy, pod)
        assert "/proc/driver/nvidia/capabilities/mig/config" in str(err.value)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert CHART_VALUE in errors[0].getMessage()
        assert MigManager(fake, grace=0).reclaim(["GPU-m"], set()) == []
        assert CHART_VALUE in caplog.records[-1].getMessage()
    assert fake.instances("GPU-m") == [kept]
    with pytest.raises(MigError) as refused:
        fake.destroy("GPU-m", kept.gpu_instance_id)
    assert refused.value.code == NVML_ERROR_NO_PERMISSION
    # Other NVML errors carry no such hint.
    assert CHART_VALUE not in str(MigError(NVML_ERROR_NOT_FOUND, "gone"))


def test_startup_turns_mig_mode_on_for_idle_allowlisted_gpus() -> None:
    spec = {"devices": [
        {"uuid": "GPU-a", "index": 0, "model": A100, "memory_mib": 40960},
        {"uuid": "GPU-b", "index": 1, "model": A100, "memory_mib": 40960},  # running processes
        {"uuid": "GPU-t", "index": 2, "model": "Tesla T4", "memory_mib": 15360},  # no MIG
    ]}  # fmt: skip
    fake = FakeMig({}, busy={"GPU-b"})
    devices = enable_idle(FakeBackend(spec).discover(), fake, ALLOW)
    assert [d.mode for d in devices] == ["mig", "hami-core", "hami-core"]
    assert fake.create("GPU-a", "1g.5gb", 0, 1).mig_uuid.startswith("MIG-")
    with pytest.raises(MigError):
        fake.create("GPU-b", "1g.5gb", 0, 1)
