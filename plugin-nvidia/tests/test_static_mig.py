"""Static MIG (``--mig-strategy``): the existing instances served as they are, per profile
(``mixed``) or under ``nvidia.com/gpu`` in place of the whole GPUs (``single``), and the node
layouts ``single`` refuses at startup, as NVIDIA's plugin does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import hami_rustcore as hc
import pytest
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import HealthChange
from hami_common.deviceplugin.runtime import PluginRuntime, RuntimeOptions
from hami_common.deviceplugin.testing import FakeBackend
from hami_common.telemetry import in_memory_tracing
from hami_plugin_nvidia.cli import main
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.mig import FakeMig
from hami_plugin_nvidia.policy import REGISTER_ANNOTATION, NvidiaPolicy
from hami_plugin_nvidia.static_mig import StaticMigError, plan

A100 = "NVIDIA A100-SXM4-40GB"
A100_80 = "NVIDIA A100-SXM4-80GB"
H100 = "NVIDIA H100 80GB HBM3"


def _gpu(uuid: str, index: int, model: str = A100, mig: bool = True) -> dict[str, Any]:
    return {"uuid": uuid, "index": index, "model": model, "memory_mib": 40960,
            **({"mode": "mig"} if mig else {})}  # fmt: skip


def _node(tmp_path: Path, strategy: str, gpus: list[dict[str, Any]],
          instances: dict[str, list[tuple[str, int, int]]]) -> tuple[Any, ...]:  # fmt: skip
    backend = FakeBackend({"devices": gpus})
    devices = backend.discover()
    fake = FakeMig({g["uuid"]: g["model"] for g in gpus if g.get("mode") == "mig"})
    made = {gpu: [fake.create(gpu, *i) for i in insts] for gpu, insts in instances.items()}
    static = plan(strategy, devices, fake)
    policy = NvidiaPolicy(NvidiaOptions(mig_strategy=strategy), hook_path=tmp_path,
                          lock_dir=tmp_path / "lock", static_mig=static)  # fmt: skip
    runtime = PluginRuntime(policy, backend, None, RuntimeOptions(node="n", plugin_dir=tmp_path),
                            devices, tracer_provider=in_memory_tracing("test")[0])  # fmt: skip
    registered = hc.decode_node_devices(policy.node_annotations(devices, {})[REGISTER_ANNOTATION])
    return runtime, made, [d.id for d in registered]


def _allocate(service: Any, ids: list[str]) -> dict[str, str]:
    request = pb.AllocateRequest()
    request.container_requests.add(devices_ids=ids)
    answer = asyncio.run(service.Allocate(request, None))
    return dict(answer.container_responses[0].envs)


def test_mixed_serves_each_profile_s_instances(tmp_path: Path) -> None:
    runtime, made, registered = _node(
        tmp_path, "mixed", [_gpu("GPU-m", 0), _gpu("GPU-s", 1, mig=False)],
        {"GPU-m": [("3g.20gb", 4, 4), ("1g.5gb", 0, 1), ("1g.5gb", 1, 1)]},
    )  # fmt: skip
    m = made["GPU-m"]
    assert registered == ["GPU-s"]  # the MIG-mode GPU is not shared as a whole GPU
    assert runtime.server.policy.resource_name == "nvidia.com/gpu"
    served = {s.policy.resource_name: s for s in runtime.capacity_servers}
    assert sorted(served) == ["nvidia.com/mig-1g.5gb", "nvidia.com/mig-3g.20gb"]
    listed = {name: [d.ID for d in table.list_response().devices]
              for name, table in zip(served, runtime.capacity_tables, strict=True)}  # fmt: skip
    assert listed["nvidia.com/mig-1g.5gb"] == [m[1].mig_uuid, m[2].mig_uuid]
    assert listed["nvidia.com/mig-3g.20gb"] == [m[0].mig_uuid]
    envs = _allocate(served["nvidia.com/mig-1g.5gb"].service, [m[2].mig_uuid])
    assert envs == {"NVIDIA_VISIBLE_DEVICES": m[2].mig_uuid}


def test_single_serves_uniform_instances_as_nvidia_com_gpu(tmp_path: Path) -> None:
    runtime, made, registered = _node(
        tmp_path, "single", [_gpu("GPU-a", 0), _gpu("GPU-b", 1)],
        {"GPU-a": [("1g.5gb", 0, 1), ("1g.5gb", 1, 1)], "GPU-b": [("1g.5gb", 6, 1)]},
    )  # fmt: skip
    instances = [i.mig_uuid for gpu in ("GPU-a", "GPU-b") for i in made[gpu]]
    assert registered == []  # no whole GPU to share through HAMi's scheduler
    assert runtime.capacity_servers == []
    server = runtime.server
    assert (server.policy.resource_name, server.policy.socket_name) == (
        "nvidia.com/gpu", "nvidia-gpu.sock")  # fmt: skip
    assert [d.ID for d in server.service.table.list_response().devices] == instances
    envs = _allocate(server.service, instances[1:])
    assert envs == {"NVIDIA_VISIBLE_DEVICES": ",".join(instances[1:])}
    # A GPU's health change reaches its instances, and only them.
    assert asyncio.run(server.service.table.apply(HealthChange("GPU-a", False, "XID 79")))
    listed = server.service.table.list_response().devices
    assert [d.health for d in listed] == ["Unhealthy", "Unhealthy", "Healthy"]


def test_single_on_a_node_without_mig_serves_whole_gpus(tmp_path: Path) -> None:
    runtime, _, registered = _node(tmp_path, "single", [_gpu("GPU-s", 0, mig=False)], {})
    assert registered == ["GPU-s"]
    assert [d.ID for d in runtime.server.service.table.list_response().devices][:2] == [
        "GPU-s-0", "GPU-s-1"]  # fmt: skip


@pytest.mark.parametrize(
    ("gpus", "instances", "message"),
    [
        ([_gpu("GPU-a", 0), _gpu("GPU-s", 1, mig=False)], {"GPU-a": [("1g.5gb", 0, 1)]},
         r"every GPU of the node must be in MIG mode, and GPU-s \(index 1\) is not"),
        ([_gpu("GPU-a", 0), _gpu("GPU-b", 1)], {"GPU-a": [("1g.5gb", 0, 1)]},
         r"GPU GPU-b \(index 1\) is in MIG mode but has no MIG instance"),
        ([_gpu("GPU-a", 0)], {"GPU-a": [("1g.5gb", 0, 1), ("2g.10gb", 2, 2)]},
         r"more than one MIG device type on the node \(1g\.5gb on .*, 2g\.10gb on "),
        ([_gpu("GPU-a", 0, A100_80), _gpu("GPU-h", 1, H100)],
         {"GPU-a": [("1g.10gb", 0, 1)], "GPU-h": [("1g.10gb", 0, 1)]},
         r"more than one MIG device type .*1g\.10gb on NVIDIA A100-SXM4-80GB .*1g\.10gb on "
         r"NVIDIA H100"),
    ],
    ids=["whole-gpu", "no-instance", "two-profiles", "two-models"],
)  # fmt: skip
def test_single_refuses_a_node_it_cannot_serve_uniformly(
    tmp_path: Path, gpus: list[dict[str, Any]], instances: dict[str, Any], message: str
) -> None:
    with pytest.raises(StaticMigError, match=message) as exc:
        _node(tmp_path, "single", gpus, instances)
    assert "--mig-strategy mixed" in str(exc.value)


def test_single_refusal_exits_1_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"devices": [
        {**_gpu("GPU-a", 0), "mig_instances": [{"profile": "1g.5gb", "start": 0, "size": 1}]},
        _gpu("GPU-s", 1, mig=False),
    ]}))  # fmt: skip
    argv = ["--node-name", "n1", "--backend", "fake", "--fake-spec", str(spec)]
    assert main([*argv, "--mig-strategy", "single"], {}) == 1
    err = capsys.readouterr().err
    assert "cannot start: --mig-strategy single: every GPU of the node must be in MIG mode" in err
