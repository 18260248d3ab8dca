"""Ascend and Cambricon through the extender's verbs on an in-memory API: the inventories (the
Ascend register annotation with the node's split mode, Cambricon's from node capacity), the
vendors' allocation annotations at filter time, HAMi's locks at bind (``hami.io/mutex.lock``
for Ascend, ``cambricon.com/dsmlu.lock`` for MLUs), and a pod asking for two vendors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import hami_rustcore as core
import orjson
import pytest
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import NODE_LOCK
from hami_common.protocol.mlulock import MLU_LOCK
from hami_common.settings.testing import device_config_text, vnpus
from hami_extender.inventory import node_fingerprint, node_inventory
from hami_extender.settings import ExtenderSettings
from hami_extender.testing import Rig, extender_rig

Json = dict[str, Any]

CONFIG = device_config_text(vnpus=vnpus("910B3"))
REGISTER = "hami.io/node-register-Ascend910B3"


def npu_node(name: str, soft: str | None = None, handshake: str | None = None) -> Json:
    devices = [
        core.Device(f"{name}-vdie-{i}", 4, 65536, 20, "Ascend910B3", vendor="Ascend910B3",
                    index=i, custominfo_json='{"NetworkID":0}')
        for i in range(2)
    ]  # fmt: skip
    ann = {REGISTER: core.encode_node_devices(devices, with_mode=False)}
    if soft is not None:
        ann["hami-vnpu-core"] = soft
    if handshake is not None:
        ann["hami.io/node-handshake-Ascend910B3"] = handshake
    return {"metadata": {"name": name, "annotations": ann}}


def mlu_node(name: str, cards: int = 2) -> Json:
    capacity = {"cambricon.com/mlu.smlu.vcore": str(100 * cards),
                "cambricon.com/mlu.smlu.vmemory": str(96 * cards)}  # fmt: skip
    return {"metadata": {"name": name}, "status": {"capacity": capacity}}


def pod(name: str, limits: dict[str, str], annotations: dict[str, str] | None = None) -> Json:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                     "annotations": annotations or {}},
        "spec": {"schedulerName": "hami-scheduler", "containers": [
            {"name": "c", "resources": {"limits": limits}}]},
    }  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "device-config.yaml"
    path.write_text(CONFIG)
    return path


def specs(config: Path) -> dict[str, Any]:
    settings = ExtenderSettings(device_config_file=config, enable_ascend=True)
    return core.Cluster(vendors=settings.vendors()).vendor_specs()


def test_ascend_npus_carry_the_nodes_split_mode(config: Path) -> None:
    table = specs(config)
    assert {d.mode for d in node_inventory(npu_node("a"), table).devices} == {"template"}
    assert {d.mode for d in node_inventory(npu_node("a", "true"), table).devices} == {"hami-core"}
    assert {d.mode for d in node_inventory(npu_node("a", "false"), table).devices} == {"template"}
    gone = node_inventory(npu_node("a", handshake="Deleted_2026.08.21 06:20:40"), table)
    assert gone.devices == []
    assert node_fingerprint(npu_node("a"), table) != node_fingerprint(npu_node("a", "true"), table)


def test_mlus_come_from_node_capacity(config: Path) -> None:
    table = specs(config)
    inv = node_inventory(mlu_node("m", cards=3), table)
    assert [(d.id, d.devmem, d.count) for d in inv.devices] == [
        (f"m-cambricon-mlu-{i}", 24576, 100) for i in range(3)
    ]
    bare = {"metadata": {"name": "m"}, "status": {"capacity": {"cpu": "8"}}}
    assert node_inventory(bare, table).devices == []
    assert node_fingerprint(mlu_node("m", 3), table) != node_fingerprint(mlu_node("m", 2), table)


async def _place(r: Rig, api: FakeApiServer, p: Json, nodes: list[str]) -> tuple[Json, Json]:
    api.put("/api/v1/namespaces/ns/pods", p)
    placed = orjson.loads(await r.ext.filter(orjson.dumps({"Pod": p, "NodeNames": nodes})))
    if not placed["NodeNames"]:
        return placed, {}
    bind = {"PodName": p["metadata"]["name"], "PodNamespace": "ns",
            "PodUID": p["metadata"]["uid"], "Node": placed["NodeNames"][0]}  # fmt: skip
    return placed, orjson.loads(await r.ext.bind(orjson.dumps(bind)))


def test_an_ascend_pod_gets_hamis_annotations_and_the_shared_lock(
    api: FakeApiServer, config: Path
) -> None:
    async def go() -> tuple[Json, Json]:
        r = extender_rig(api, 0, extra_nodes=[npu_node("npu")], device_config_file=config,
                         node_lock="annotation",
                         enable_ascend=True)  # fmt: skip
        limits = {"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "16384"}
        return await _place(r, api, pod("p", limits), ["npu"])

    placed, bound = asyncio.run(go())
    assert placed["NodeNames"] == ["npu"]
    assert bound == {"Error": ""}
    ann = api.get("/api/v1/namespaces/ns/pods/p")["metadata"]["annotations"]
    uuid = ann["hami.io/Ascend910B3-devices-allocated"].split(",")[0]
    assert ann["hami.io/Ascend910B3-devices-to-allocate"] == f"{uuid},Ascend910B3,16384,0:;"
    assert ann["huawei.com/Ascend910B3"] == (
        f'[{{"UUID":"{uuid}","temp":"vir05_1c_16g","memory":16384}}]'
    )
    assert ann["predicate-time"].isdigit()
    node_ann = api.get("/api/v1/nodes/npu")["metadata"]["annotations"]
    assert node_ann[NODE_LOCK].endswith(",ns,p")
    assert MLU_LOCK not in node_ann


def test_an_mlu_pod_takes_only_cambricons_lock_which_refuses_the_next(
    api: FakeApiServer, config: Path
) -> None:
    limits = {"cambricon.com/vmlu": "1", "cambricon.com/mlu.smlu.vmemory": "20",
              "cambricon.com/mlu.smlu.vcore": "10"}  # fmt: skip

    async def go() -> tuple[Json, Json, Json]:
        r = extender_rig(api, 0, extra_nodes=[mlu_node("mlu")], device_config_file=config,
                         lock_wait_seconds=0)  # fmt: skip
        first = await _place(r, api, pod("a", limits), ["mlu"])
        _, second = await _place(r, api, pod("b", limits), ["mlu"])
        return first[0], first[1], second

    placed, bound, refused = asyncio.run(go())
    assert placed["NodeNames"] == ["mlu"]
    assert bound == {"Error": ""}
    ann = api.get("/api/v1/namespaces/ns/pods/a")["metadata"]["annotations"]
    index = ann["hami.io/cambricon-mlu-devices-allocated"].split(",")[0].rsplit("-", 1)[1]
    assert ann["hami.io/cambricon-mlu-devices-to-allocate"].endswith(",MLU,5120,10:;")
    assert ann["CAMBRICON_DSMLU_ASSIGNED"] == "false"
    assert ann["CAMBRICON_DSMLU_PROFILE"] == f"{index}_10_20"
    node_ann = api.get("/api/v1/nodes/mlu")["metadata"]["annotations"]
    assert MLU_LOCK in node_ann
    assert NODE_LOCK not in node_ann
    assert "has been locked within 2 minutes" in refused["Error"]


def test_a_pod_asking_for_two_vendors_is_told_why_it_waits(
    api: FakeApiServer, config: Path
) -> None:
    async def go() -> Rig:
        r = extender_rig(api, 1, extra_nodes=[npu_node("npu")], device_config_file=config,
                         enable_ascend=True)  # fmt: skip
        limits = {"nvidia.com/gpu": "1", "huawei.com/Ascend910B3": "1"}
        placed, _ = await _place(r, api, pod("both", limits), ["n0", "npu"])
        assert placed["NodeNames"] == []
        assert placed["FailedNodes"] == {
            "n0": "1/0 NodeInsufficientDevice",
            "npu": "1/0 NodeInsufficientDevice",
        }
        return r

    r = asyncio.run(go())
    event, _ = r.events.queue.get_nowait()
    assert "asks for devices of 2 vendors at once (Ascend910B3, NVIDIA)" in event["message"]
    assert "split it into one pod per vendor" in event["message"]
