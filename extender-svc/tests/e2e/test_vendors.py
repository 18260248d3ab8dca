"""A mixed cluster on the real control plane: NVIDIA, Ascend 910B3, Ascend 310P and Cambricon
kwok nodes, each with its vendor's real device plugin (fake backend) behind kubelet's
device-manager stand-in, the real kube-scheduler calling the extender, the webhook over TLS.
Pods of each vendor land on their vendor's node with HAMi's annotations and the env (or device
nodes) its plugin answers; requests no node can take stay Pending with the vendor's reasons; a
pod asking for two vendors at once is told why it waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import hami_rustcore as core
import pytest
from hami_common.k8s import EVENTS, NODES, PODS, KubeClient
from hami_common.protocol.annotations import BIND_PHASE, NODE_LOCK
from hami_common.protocol.mlulock import MLU_LOCK
from hami_e2e.kubelet.manager import Allocation
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.nodes import NodePool
from hami_e2e.stack import HamiStack

pytestmark = pytest.mark.e2e
Json = dict[str, Any]

POOLS = (
    NodePool(name="mix-gpu", count=1, devices_per_node=2, labels={"gpu": "on"}),
    NodePool(name="mix-910b", count=1, devices_per_node=4, vendor="ascend", model="910B3",
             device_memory_mib=65536, labels={"ascend": "on"}),
    NodePool(name="mix-310p", count=1, devices_per_node=2, vendor="ascend", model="310P3",
             device_memory_mib=21527, labels={"ascend": "on"}),
    NodePool(name="mix-mlu", count=1, devices_per_node=2, vendor="cambricon", model="MLU370-X8",
             device_memory_mib=24576, labels={"mlu": "on"}),
)  # fmt: skip


def pod(name: str, limits: dict[str, str], annotations: dict[str, str] | None = None) -> Json:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "main", "image": "busybox",
                                 "resources": {"limits": limits}}]},
    }  # fmt: skip


@contextlib.asynccontextmanager
async def mixed_nodes(stack: HamiStack, names: list[str]) -> AsyncIterator[dict[str, GpuNode]]:
    """Each node's plugin and a kubelet stand-in in this loop (so the test reads every
    container's Allocate answer), all registered."""
    async with contextlib.AsyncExitStack() as running:
        nodes = {n: await running.enter_async_context(GpuNode(stack.cluster, n)) for n in names}
        await asyncio.gather(*(node.wait_registered(60) for node in nodes.values()))
        yield nodes


async def allocation(
    nodes: dict[str, GpuNode], ns: str, name: str, within: float = 90
) -> Allocation:
    deadline = time.monotonic() + within
    while True:
        for node in nodes.values():
            got = node.kubelet.admitted_allocation(ns, name, "main")
            if got is not None:
                return got
        assert time.monotonic() < deadline, f"{ns}/{name} was never allocated"
        await asyncio.sleep(0.2)


async def succeeded(kube: KubeClient, ns: str, name: str, within: float = 60) -> Json:
    deadline = time.monotonic() + within
    while True:
        p = await kube.get(PODS, name, namespace=ns)
        if (p["metadata"].get("annotations") or {}).get(BIND_PHASE) == "success":
            return p
        assert time.monotonic() < deadline, f"{ns}/{name} never reached bind-phase success"
        await asyncio.sleep(0.2)


async def filtering_failed(kube: KubeClient, ns: str, name: str, within: float = 60) -> str:
    deadline = time.monotonic() + within
    while True:
        events = (await kube.list(EVENTS, namespace=ns))["items"]
        mine = [e["message"] for e in events if e.get("reason") == "FilteringFailed"
                and e["involvedObject"]["name"] == name]  # fmt: skip
        if mine:
            return str(mine[-1])
        assert time.monotonic() < deadline, f"{ns}/{name}: no FilteringFailed event"
        await asyncio.sleep(0.3)


def test_each_vendors_pods_land_with_hamis_annotations_and_env(
    hami_stack: HamiStack, hami_ns: str, gpu_nodes: Any
) -> None:
    names = [n for p in POOLS for n in gpu_nodes(p, agents=False)]
    gpu, npu, p310, mlu = names

    async def go() -> dict[str, tuple[Json, Allocation]]:
        async with mixed_nodes(hami_stack, names) as nodes, hami_stack.client() as kube:
            shapes = {
                "gpu": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000"},
                "npu": {"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "2000"},
                "p310": {"huawei.com/Ascend310P": "1"},
                "mlu": {"cambricon.com/vmlu": "1", "cambricon.com/mlu.smlu.vmemory": "20",
                        "cambricon.com/mlu.smlu.vcore": "10"},
            }  # fmt: skip
            for name, limits in shapes.items():
                await kube.create(PODS, pod(name, limits), namespace=hami_ns)
            out = {}
            for name in shapes:
                got = await allocation(nodes, hami_ns, name)
                out[name] = (await succeeded(kube, hami_ns, name), got)
            locks = [(await kube.get(NODES, n))["metadata"].get("annotations") or {}
                     for n in names]  # fmt: skip
            assert not any(NODE_LOCK in a or MLU_LOCK in a for a in locks), locks
            return out

    placed = asyncio.run(go())
    for name, node in (("gpu", gpu), ("npu", npu), ("p310", p310), ("mlu", mlu)):
        p, got = placed[name]
        assert p["spec"]["nodeName"] == node, name
        assert p["spec"]["schedulerName"] == "hami-scheduler"
        assert got.error is None, got.error
    # Ascend 910B3, template mode: the webhook rounded 2000 MiB to vir05_1c_16g
    p, got = placed["npu"]
    ann = p["metadata"]["annotations"]
    assert (
        p["spec"]["containers"][0]["resources"]["limits"]["huawei.com/Ascend910B3-memory"]
        == "16384"
    )
    [[dev]] = core.decode_pod_devices(ann["hami.io/Ascend910B3-devices-allocated"])
    assert (dev.vendor, dev.usedmem) == ("Ascend910B3", 16384)
    assert ann["huawei.com/Ascend910B3"] == (
        f'[{{"UUID":"{dev.uuid}","temp":"vir05_1c_16g","memory":16384}}]'
    )
    assert ann["hami.io/Ascend910B3-devices-to-allocate"] == ";"
    assert got.response is not None
    phy = next(d["phy_id"] for d in POOLS[1].devices(npu) if d["uuid"] == dev.uuid)
    assert dict(got.response.envs) == {"ASCEND_VISIBLE_DEVICES": str(phy),
                                       "ASCEND_VNPU_SPECS": "vir05_1c_16g"}  # fmt: skip
    # Ascend 310P: a whole NPU (21527 MiB), no template
    p, got = placed["p310"]
    [[dev]] = core.decode_pod_devices(
        p["metadata"]["annotations"]["hami.io/Ascend310P-devices-allocated"]
    )
    assert dev.usedmem == 21527
    assert got.response is not None
    assert "ASCEND_VNPU_SPECS" not in got.response.envs
    # Cambricon: an sMLU of 10% and 20 x 256 MiB, HAMi's profile, the device nodes
    p, got = placed["mlu"]
    ann = p["metadata"]["annotations"]
    [[dev]] = core.decode_pod_devices(ann["hami.io/cambricon-mlu-devices-allocated"])
    slot = dev.uuid.rsplit("-", 1)[1]
    assert (dev.uuid, dev.usedmem, dev.usedcores) == (f"{mlu}-cambricon-mlu-{slot}", 5120, 10)
    assert ann["CAMBRICON_DSMLU_PROFILE"] == f"{slot}_10_20"
    assert ann["CAMBRICON_DSMLU_ASSIGNED"] == "true"
    assert ann["CAMBRICON_DSMLU_PROFILE_INSTANCE"].split("_")[2] == slot
    assert got.response is not None
    assert got.response.devices[0].container_path == f"/dev/cambricon_dev{slot}"
    # NVIDIA, unchanged
    p, got = placed["gpu"]
    assert got.response is not None
    assert got.response.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "3000m"


def test_what_no_node_can_take_stays_pending_with_the_vendors_reason(
    hami_stack: HamiStack, hami_ns: str, gpu_nodes: Any
) -> None:
    for pool in POOLS:
        gpu_nodes(pool)

    async def go() -> dict[str, str]:
        async with hami_stack.client() as kube:
            shapes = {
                # more MLU memory than a card has (100 x 256 MiB; the node has 192 units in all,
                # so kube-scheduler's own check passes and the extender answers)
                "mlu-big": ({"cambricon.com/vmlu": "1", "cambricon.com/mlu.smlu.vmemory": "100"},
                            {"mlu": "on"}, {}),
                # hami-core (soft split) on template-mode NPUs
                "npu-soft": ({"huawei.com/Ascend910B3": "1",
                              "huawei.com/Ascend910B3-memory": "8000"},
                             {"ascend": "on"}, {"huawei.com/vnpu-mode": "hami-core"}),
                # more 310P NPUs than the node has
                "p310-many": ({"huawei.com/Ascend310P": "3"}, {"ascend": "on"}, {}),
                # two vendors in one pod: no node has both
                "two-vendors": ({"nvidia.com/gpu": "1", "huawei.com/Ascend910B3": "1"}, {}, {}),
            }  # fmt: skip
            for name, (limits, selector, annotations) in shapes.items():
                body = pod(name, limits, annotations)
                body["spec"]["nodeSelector"] = selector
                await kube.create(PODS, body, namespace=hami_ns)
            messages = {n: await filtering_failed(kube, hami_ns, n) for n in shapes}
            for name in shapes:
                assert not (await kube.get(PODS, name, namespace=hami_ns))["spec"].get("nodeName")
            return messages

    messages = asyncio.run(go())
    assert "2 devices CardInsufficientMemory" in messages["mlu-big"]
    assert "ModeNotFit" in messages["npu-soft"]
    assert "NodeInsufficientDevice" in messages["p310-many"]
    assert "asks for devices of 2 vendors at once (Ascend910B3, NVIDIA)" in messages["two-vendors"]
