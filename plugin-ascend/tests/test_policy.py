"""HAMi's Ascend registration and Allocate answers (golden files for what other programs read:
the node annotations and the container's env and mounts). Regenerate with ``UPDATE_GOLDEN=1``
and review the diff."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import hami_rustcore
import pytest
from google.protobuf.json_format import MessageToDict
from hami_common.deviceplugin.vendor import ContainerContext
from hami_common.settings import load_device_config
from hami_plugin_ascend.config import AscendOptions, split_count
from hami_plugin_ascend.devices import FakeNpuBackend, NpuDevice
from hami_plugin_ascend.policy import AscendPolicy

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 8, 21, 6, 20, 39)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def npus(n: int, chip: str = "910B3") -> list[NpuDevice]:
    spec = [{"uuid": f"vdie-{i}", "index": i, "model": chip, "memory_mib": 65536,
             "phy_id": 10 + i} for i in range(n)]  # fmt: skip
    return [d for d in FakeNpuBackend({"devices": spec}).discover() if isinstance(d, NpuDevice)]


def policy(device_config: Path, tmp: Path, cw: str = "Ascend910B3", *, soft: bool = False,
           n: int = 8) -> tuple[AscendPolicy, list[NpuDevice]]:  # fmt: skip
    chip = next(c for c in load_device_config(device_config).vnpus.configs if c.common_word == cw)
    options = AscendOptions(chip=chip, soft=soft, split_count=split_count(chip, None))
    devices = npus(n, chip.chip_name)
    return AscendPolicy(options, devices, hook_path=tmp / "hook",
                        shared_region=tmp / "shared", now=lambda: NOW), devices  # fmt: skip


def ctx(
    devices: str, runtime: str, *, soft: bool = False, n: int | None = None
) -> ContainerContext:
    ann = {"huawei.com/Ascend910B3": runtime}
    if soft:
        ann["huawei.com/vnpu-mode"] = "hami-core"
    pod: dict[str, Any] = {"metadata": {"uid": "uid-1", "annotations": ann},
                           "spec": {"containers": [{"name": "main"}]}}  # fmt: skip
    [entry] = hami_rustcore.decode_pod_devices(devices)
    return ContainerContext(pod, 0, {"name": "main"}, entry, ["x"] * (n or len(entry)))


def answer(p: AscendPolicy, c: ContainerContext, tmp: Path) -> str:
    text = json.dumps(MessageToDict(p.container_response(c), preserving_proto_field_name=True),
                      indent=1, sort_keys=True)  # fmt: skip
    return text.replace(str(tmp), "<tmp>") + "\n"


def test_register_annotations_are_hamis(device_config: Path, tmp_path: Path) -> None:
    p, devices = policy(device_config, tmp_path)
    annotations = p.node_annotations(devices, {})
    check_golden("register-910b3.json", json.dumps(annotations, indent=1) + "\n")
    decoded = hami_rustcore.decode_node_devices(
        annotations["hami.io/node-register-Ascend910B3"], "Ascend910B3"
    )
    assert [d.count for d in decoded] == [4] * 8  # 65536 / the smallest template
    assert [json.loads(d.custominfo_json or "{}")["NetworkID"] for d in decoded] == [0] * 4 + [
        1
    ] * 4
    assert annotations["hami.io/node-handshake-Ascend910B3"] == "Reported_2026.08.21 06:20:40"
    # stable while nothing changes: a scheduler's Requesting_ is answered, not a write per pass
    assert p.node_annotations(devices, {}) == annotations


def test_soft_nodes_register_100_cores_and_310p_no_network(
    device_config: Path, tmp_path: Path
) -> None:
    p, devices = policy(device_config, tmp_path, soft=True)
    ann = p.node_annotations(devices, {})
    assert ann["hami-vnpu-core"] == "true"
    decoded = hami_rustcore.decode_node_devices(ann["hami.io/node-register-Ascend910B3"])
    assert {d.devcore for d in decoded} == {100}
    p, devices = policy(device_config, tmp_path, "Ascend310P", n=2)
    ann = p.node_annotations(devices, {})
    assert ann["hami.io/node-register-Ascend310P"] == (
        '[{"id":"vdie-0","count":7,"devmem":21527,"devcore":8,"type":"Ascend310P","health":true},'
        '{"id":"vdie-1","index":1,"count":7,"devmem":21527,"devcore":8,"type":"Ascend310P",'
        '"health":true}]'
    )


def test_allocate_template_mode(device_config: Path, tmp_path: Path) -> None:
    p, _ = policy(device_config, tmp_path)
    c = ctx(
        "vdie-3,Ascend910B3,16384,0:;", '[{"UUID":"vdie-3","temp":"vir05_1c_16g","memory":16384}]'
    )
    check_golden("allocate-template.json", answer(p, c, tmp_path))
    whole = ctx("vdie-1,Ascend910B3,65536,0:vdie-2,Ascend910B3,65536,0:;",
                '[{"UUID":"vdie-1","memory":65536},{"UUID":"vdie-2","memory":65536}]')  # fmt: skip
    envs = p.container_response(whole).envs
    assert dict(envs) == {"ASCEND_VISIBLE_DEVICES": "11,12"}  # physical IDs, no template


def test_allocate_hami_core_mode(device_config: Path, tmp_path: Path) -> None:
    p, _ = policy(device_config, tmp_path, soft=True)
    c = ctx("vdie-3,Ascend910B3,28672,40:;", '[{"UUID":"vdie-3","memory":28672,"core":40}]',
            soft=True)  # fmt: skip
    check_golden("allocate-hami-core.json", answer(p, c, tmp_path))
    folder = tmp_path / "hook" / "containers" / "uid-1_main"
    assert folder.is_dir()
    assert folder.stat().st_mode & 0o777 == 0o777


@pytest.mark.parametrize(
    ("devices", "runtime", "message"),
    [
        ("vdie-3,Ascend910B3,16384,0:;", "", "has no huawei.com/Ascend910B3 annotation"),
        ("vdie-3,Ascend910B3,16384,0:;", "[{", "Ascend runtime annotation"),
        ("vdie-3,Ascend910B3,16384,0:;", '[{"UUID":"vdie-4"}]', "does not list NPU vdie-3"),
        ("vdie-99,Ascend910B3,16384,0:;", '[{"UUID":"vdie-99"}]', "vdie-99 is not on this node"),
        ("vdie-1,Ascend910B3,16384,0:vdie-2,Ascend910B3,16384,0:;",
         '[{"UUID":"vdie-1","temp":"vir05_1c_16g"},{"UUID":"vdie-2","temp":"vir05_1c_16g"}]',
         "creates a template on one NPU only"),
    ],
)  # fmt: skip
def test_allocations_that_cannot_work_are_refused_with_the_reason(
    device_config: Path, tmp_path: Path, devices: str, runtime: str, message: str
) -> None:
    p, _ = policy(device_config, tmp_path)
    with pytest.raises(ValueError, match=message):
        p.container_response(ctx(devices, runtime))
