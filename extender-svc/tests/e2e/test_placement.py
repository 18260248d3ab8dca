"""Pods shaped like HAMi's examples, through the real API server (webhook over TLS), the real
kube-scheduler (extender filter and bind) and kwok, land on the expected nodes and devices, or
stay Pending with the expected reason."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import hami_rustcore as core
import pytest
from hami_common.k8s import EVENTS, NODES, PODS, KubeClient
from hami_common.protocol.annotations import NODE_LOCK
from hami_e2e.nodes import NodePool
from hami_extender.testing import ALLOCATED, gpu_pod

pytestmark = pytest.mark.e2e
Json = dict[str, Any]


async def wait_bound(kube: KubeClient, ns: str, name: str, within: float = 60) -> Json:
    deadline = time.monotonic() + within
    while True:
        pod = await kube.get(PODS, name, namespace=ns)
        if pod["spec"].get("nodeName"):
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(f"{ns}/{name} not bound: {pod.get('status')}")
        await asyncio.sleep(0.2)


async def wait_unlocked(kube: KubeClient, node: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while NODE_LOCK in ((await kube.get(NODES, node))["metadata"].get("annotations") or {}):
        assert time.monotonic() < deadline, f"the lock of {node} was never released"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # and the extender's node watch has shown it


def devices_of(pod: Json) -> list[list[core.AllocDevice]]:
    return core.decode_pod_devices(pod["metadata"]["annotations"][ALLOCATED])


def run(stack: Any, ns: str, coro_fn: Any) -> Any:
    async def main() -> Any:
        async with stack.client() as kube:
            return await coro_fn(kube)

    return asyncio.run(main())


def test_one_gpu_3000mib_30pct_lands_with_its_limits(hami_stack, hami_ns, gpu_nodes) -> None:
    nodes = gpu_nodes(NodePool(name="ex1", count=2, devices_per_node=2))

    async def go(kube: KubeClient) -> Json:
        limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"}
        await kube.create(PODS, gpu_pod("p", limits), namespace=hami_ns)
        return await wait_bound(kube, hami_ns, "p")

    pod = run(hami_stack, hami_ns, go)
    assert pod["spec"]["schedulerName"] == "hami-scheduler"  # the webhook, over TLS
    assert pod["spec"]["nodeName"] in nodes
    ann = pod["metadata"]["annotations"]
    assert ann["hami.io/vgpu-node"] == pod["spec"]["nodeName"]
    assert ann["hami.io/bind-phase"] in ("allocating", "success")
    [[dev]] = devices_of(pod)
    assert (dev.usedmem, dev.usedcores, dev.vendor) == (3000, 30, "NVIDIA")
    assert "hami.io/trace-context" in ann


def test_two_gpus_percentage_and_exclusive(hami_stack, hami_ns, gpu_nodes) -> None:
    gpu_nodes(NodePool(name="ex2", count=1, devices_per_node=4))

    async def go(kube: KubeClient) -> list[Json]:
        shapes = {
            "two": {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "1000"},
            "pct": {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
            "excl": {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"},
        }
        for name, limits in shapes.items():
            await kube.create(PODS, gpu_pod(name, limits), namespace=hami_ns)
        return [await wait_bound(kube, hami_ns, n) for n in shapes]

    two, pct, excl = run(hami_stack, hami_ns, go)
    [devs] = devices_of(two)
    assert len(devs) == 2
    assert len({d.uuid for d in devs}) == 2
    [[p]] = devices_of(pct)
    assert p.usedmem == 32768 // 2
    [[e]] = devices_of(excl)
    assert e.usedcores == 100
    # Nothing else shares the exclusive card.
    others = {d.uuid for d in devs} | {p.uuid}
    assert e.uuid not in others


def test_use_gputype_and_nouse_gpuuuid(hami_stack, hami_ns, gpu_nodes) -> None:
    gpu_nodes(NodePool(name="v100", count=1, devices_per_node=2))
    a100 = gpu_nodes(NodePool(name="a100", count=1, devices_per_node=2,
                              model="NVIDIA-A100-SXM4-40GB", device_memory_mib=40960))  # fmt: skip
    banned = NodePool(name="a100", count=1, devices_per_node=2).devices(a100[0])[0]["uuid"]

    async def go(kube: KubeClient) -> list[Json]:
        limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
        await kube.create(PODS, gpu_pod("typed", limits, {"nvidia.com/use-gputype": "A100"}),
                          namespace=hami_ns)  # fmt: skip
        await kube.create(PODS, gpu_pod("nouse", limits, {
            "nvidia.com/use-gputype": "A100", "nvidia.com/nouse-gpuuuid": banned}),
            namespace=hami_ns)  # fmt: skip
        return [await wait_bound(kube, hami_ns, n) for n in ("typed", "nouse")]

    typed, nouse = run(hami_stack, hami_ns, go)
    assert typed["spec"]["nodeName"] == a100[0]
    assert nouse["spec"]["nodeName"] == a100[0]
    assert devices_of(nouse)[0][0].uuid != banned


def test_numa_bind_keeps_both_gpus_on_one_numa_node(hami_stack, hami_ns, gpu_nodes) -> None:
    pool = NodePool(name="numa", count=1, devices_per_node=4, numa_nodes=2)
    [node] = gpu_nodes(pool)
    numa = {d["uuid"]: d["numa"] for d in pool.devices(node)}

    async def go(kube: KubeClient) -> Json:
        # Fill one device of NUMA 0 so that a careless pick would straddle the two.
        await kube.create(PODS, gpu_pod("filler", {"nvidia.com/gpu": "1",
                                                   "nvidia.com/gpucores": "100"}),
                          namespace=hami_ns)  # fmt: skip
        await wait_bound(kube, hami_ns, "filler")
        await kube.create(
            PODS,
            gpu_pod(
                "numa",
                {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "1000"},
                {"nvidia.com/numa-bind": "true"},
            ),
            namespace=hami_ns,
        )
        return await wait_bound(kube, hami_ns, "numa")

    pod = run(hami_stack, hami_ns, go)
    [devs] = devices_of(pod)
    assert len({numa[d.uuid] for d in devs}) == 1


def test_binpack_packs_and_spread_spreads(hami_stack, hami_ns, gpu_nodes) -> None:
    gpu_nodes(NodePool(name="pol", count=2, devices_per_node=2))
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000", "nvidia.com/gpucores": "10"}

    async def go(kube: KubeClient) -> dict[str, str]:
        placed = {}
        for name, policy in [("a", "binpack"), ("b", "binpack"), ("c", "spread")]:
            await kube.create(PODS, gpu_pod(name, limits, {
                "hami.io/node-scheduler-policy": policy}), namespace=hami_ns)  # fmt: skip
            placed[name] = (await wait_bound(kube, hami_ns, name))["spec"]["nodeName"]
            # allocated, its node's lock released: else the next pod prefers the idle node
            await wait_unlocked(kube, placed[name])
        return placed

    placed = run(hami_stack, hami_ns, go)
    assert placed["a"] == placed["b"]  # binpack: the busier node
    assert placed["c"] != placed["a"]  # spread: the emptier node


def test_a_binpack_burst_ends_on_the_nodes_packing_needs(hami_stack, hami_ns, gpu_nodes) -> None:
    """Six pods at once, two to a node: the burst window spreads their allocations over the
    nodes the burst fills anyway, never onto a fourth."""
    gpu_nodes(NodePool(name="burst", count=4, devices_per_node=1))
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "16000", "nvidia.com/gpucores": "10"}
    names = [f"b{i}" for i in range(6)]

    async def go(kube: KubeClient) -> list[str]:
        await asyncio.gather(*(kube.create(PODS, gpu_pod(n, limits), namespace=hami_ns)
                               for n in names))  # fmt: skip
        bound = await asyncio.gather(*(wait_bound(kube, hami_ns, n, 120) for n in names))
        return [pod["spec"]["nodeName"] for pod in bound]

    placed = run(hami_stack, hami_ns, go)
    assert len(set(placed)) == 3, placed


def test_too_big_stays_pending_with_the_reason(hami_stack, hami_ns, gpu_nodes) -> None:
    gpu_nodes(NodePool(name="big", count=2, devices_per_node=2))

    async def go(kube: KubeClient) -> tuple[Json, list[Json], Json]:
        await kube.create(PODS, gpu_pod("huge", {"nvidia.com/gpu": "1",
                                                 "nvidia.com/gpumem": "99999"}),
                          namespace=hami_ns)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            events = (await kube.list(EVENTS, namespace=hami_ns))["items"]
            mine = [e for e in events if e.get("reason") == "FilteringFailed"]
            if mine or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        pod = await kube.get(PODS, "huge", namespace=hami_ns)
        async with hami_stack.extender_http() as http:
            url = f"{hami_stack.extender_url()}/api/v1/explain/{hami_ns}/huge"
            explain = (await http.get(url)).json()
        return pod, mine, explain

    pod, events, explain = run(hami_stack, hami_ns, go)
    assert not pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Pending"
    assert events
    assert "CardInsufficientMemory" in events[0]["message"]
    last = explain["steps"][-1]
    assert last["outcome"] == "unschedulable"
    assert last["reasons"].get("CardInsufficientMemory", 0) >= 4
    assert "no node fits" in explain["summary"]
