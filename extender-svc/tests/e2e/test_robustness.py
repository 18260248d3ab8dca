"""The node lock's HAMi bugs, a burst of 200 pods with the extender killed in the middle, a
Lease handover and a restart between filter and bind, all on the real control plane, with the
real NVIDIA plugin on every node. The lock tests run with each ``--node-lock`` (HAMi's
annotation on the node, and the lock kept in memory), and run the node's kubelet stand-in
themselves (`GpuNode` with ``watch_pods=False``), so that the plugin's Allocate comes when they
say."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import hami_rustcore as core
import orjson
import pytest
from hami_common.k8s import NODES, PODS, KubeClient
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import BIND_PHASE, NODE_LOCK, PHASE_SUCCESS
from hami_e2e.components import free_port
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.nodes import NodePool
from hami_e2e.stack import MANUAL_SCHEDULER, HamiStack
from hami_extender.testing import ALLOCATED, gpu_pod

pytestmark = pytest.mark.e2e
Json = dict[str, Any]
LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8000", "nvidia.com/gpucores": "25"}


async def post(stack: HamiStack, port: int, verb: str, body: Json) -> Json:
    """A verb as kube-scheduler calls it: HTTPS, with its client certificate."""
    async with stack.extender_http(timeout=40) as http:
        resp = await http.post(f"{stack.extender_url(port)}/{verb}", content=orjson.dumps(body))
        return dict(resp.json())


async def unscheduled_pod(kube: KubeClient, ns: str, name: str) -> Json:
    """A device pod kube-scheduler ignores (no such profile) and `manual_extender` serves, so
    the test drives the verbs."""
    return await kube.create(PODS, gpu_pod(name, LIMITS, scheduler=MANUAL_SCHEDULER),
                             namespace=ns)  # fmt: skip


async def filter_and_bind(stack: HamiStack, port: int, pod: Json, node: str) -> str:
    answer = await post(stack, port, "filter", {"Pod": pod, "NodeNames": [node]})
    assert answer["NodeNames"] == [node], answer
    meta = pod["metadata"]
    bound = await post(stack, port, "bind", {
        "PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"],
        "Node": node})  # fmt: skip
    return str(bound["Error"])


async def bound(kube: KubeClient, ns: str, name: str, within: float = 60) -> Json:
    deadline = time.monotonic() + within
    while not (pod := await kube.get(PODS, name, namespace=ns))["spec"].get("nodeName"):
        assert time.monotonic() < deadline, f"{ns}/{name} not bound: {pod.get('status')}"
        await asyncio.sleep(0.2)
    return pod


@contextlib.asynccontextmanager
async def quiet_node(stack: HamiStack, node: str) -> AsyncIterator[GpuNode]:
    """The node's real plugin, registered, with a kubelet stand-in that calls Allocate only when
    the test does (``gpu.kubelet.admit(pod)``)."""
    async with GpuNode(stack.cluster, node, watch_pods=False) as gpu:
        await gpu.wait_registered()
        yield gpu


async def lock_value(kube: KubeClient, node: str) -> str | None:
    return ((await kube.get(NODES, node))["metadata"].get("annotations") or {}).get(NODE_LOCK)


def test_2214_failed_bind_never_leaks_the_lock(hami_stack, hami_ns, gpu_nodes, manual_extender):
    [node] = gpu_nodes(NodePool(name="lk2214", count=1, devices_per_node=2), agents=False)
    port = manual_extender.port

    async def go() -> tuple[str, str | None, str]:
        async with quiet_node(hami_stack, node), hami_stack.client() as kube:
            pod = await unscheduled_pod(kube, hami_ns, "doomed")
            answer = await post(hami_stack, port, "filter", {"Pod": pod, "NodeNames": [node]})
            assert answer["NodeNames"] == [node]
            # The pod is bound elsewhere behind our back: our Binding must fail.
            await kube.create(
                PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": "doomed", "namespace": hami_ns},
                    "target": {"kind": "Node", "name": node},
                },
                namespace=hami_ns,
                name="doomed",
                subresource="binding",
            )
            error = (await post(hami_stack, port, "bind", {
                "PodName": "doomed", "PodNamespace": hami_ns, "PodUID": pod["metadata"]["uid"],
                "Node": node}))["Error"]  # fmt: skip
            # nothing holds the node: the next pod binds at once
            after = await filter_and_bind(hami_stack, port, await unscheduled_pod(
                kube, hami_ns, "next"), node)  # fmt: skip
            return error, await lock_value(kube, node), after

    error, lock, after = asyncio.run(go())
    assert "failed" in error
    assert after == ""  # HAMi #2214 leaked the lock here, and the node took no pod any more
    if manual_extender.node_lock == "annotation":
        assert lock is not None  # "next" holds it now (its Allocate is the test's to call)
        assert lock.endswith(f",{hami_ns},next")
    else:
        assert lock is None  # no write to the node at all


def test_3096_a_live_holder_keeps_its_lock_past_hamis_expiry(
    hami_stack, hami_ns, gpu_nodes, manual_extender
):
    [node] = gpu_nodes(NodePool(name="lk3096", count=1, devices_per_node=2), agents=False)
    port, annotation = manual_extender.port, manual_extender.node_lock == "annotation"

    async def go() -> tuple[str, str | None, str]:
        async with quiet_node(hami_stack, node) as gpu, hami_stack.client() as kube:
            first = await unscheduled_pod(kube, hami_ns, "first")
            assert await filter_and_bind(hami_stack, port, first, node) == ""
            if annotation:
                # The holder's Allocate is slow: make its lock older than HAMi's 5 minutes.
                old = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
                await kube.patch(NODES, node, {"metadata": {"annotations": {
                    NODE_LOCK: f"{old},{hami_ns},first"}}})  # fmt: skip
            second = await unscheduled_pod(kube, hami_ns, "second")
            error = await filter_and_bind(hami_stack, port, second, node)
            # HAMi #3096 handed the lock over here; the two pods then swapped limits.
            holder = await lock_value(kube, node)
            # The first pod's plugin step finishes: now the second may bind. The refused bind
            # gave its reservation back, so kube-scheduler's retry filters again, then binds.
            [allocated] = await gpu.kubelet.admit(await kube.get(PODS, "first", namespace=hami_ns))
            assert allocated.error is None, allocated.error
            retry = await filter_and_bind(hami_stack, port, second, node)
            return error, holder, retry

    error, holder, retry = asyncio.run(go())
    if annotation:
        assert "locked by pod" in error
        assert str(holder).endswith(f",{hami_ns},first")
    else:
        assert f"is allocating pod {hami_ns}/first" in error
        assert holder is None
    assert retry == ""


def test_1433_a_substring_named_pod_cannot_release_the_lock(
    hami_stack, hami_ns, gpu_nodes, manual_extender
):
    [node] = gpu_nodes(NodePool(name="lk1433", count=1, devices_per_node=2), agents=False)
    port = manual_extender.port

    async def go() -> tuple[bool, str | None, str]:
        async with quiet_node(hami_stack, node), hami_stack.client() as kube:
            holder = await unscheduled_pod(kube, hami_ns, "gpu-pod-1")
            assert await filter_and_bind(hami_stack, port, holder, node) == ""
            # A pod whose name is a suffix of the holder's finishes and releases "its" lock.
            released = await nodelock.release(kube, node, hami_ns, "pod-1")
            done = {"metadata": {"name": "pod-1", "annotations": {
                "hami.io/vgpu-node": node, "hami.io/bind-phase": "success"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}  # fmt: skip
            await kube.create(PODS, done, namespace=hami_ns)
            # the node still allocates gpu-pod-1: another pod waits, and is refused in time
            third = await filter_and_bind(hami_stack, port, await unscheduled_pod(
                kube, hami_ns, "third"), node)  # fmt: skip
            return released, await lock_value(kube, node), third

    released, lock, third = asyncio.run(go())
    assert released is False
    assert third != ""
    if manual_extender.node_lock == "annotation":
        assert str(lock).endswith(f",{hami_ns},gpu-pod-1")
    else:
        assert lock is None
        assert f"is allocating pod {hami_ns}/gpu-pod-1" in third


@contextlib.contextmanager
def scheduler_extender(stack: HamiStack, *extra: str) -> Iterator[tuple[str, ...]]:
    """kube-scheduler's extender restarted with ``extra`` flags for the test (the defaults
    again after it); yields the flags, for the test's own restarts."""
    if extra:
        stack.extender_on().kill(signal.SIGTERM)
        stack.extender(None, *extra).wait_ready(60)
    try:
        yield extra
    finally:
        if extra:
            stack.extender_on().kill(signal.SIGTERM)
            stack.extender().wait_ready(60)


@pytest.mark.timeout(500)
@pytest.mark.parametrize("node_lock", ["memory", "annotation"])
def test_200_pods_with_the_extender_killed_midway(
    hami_stack, hami_ns, gpu_nodes, node_lock: str
) -> None:
    """7 nodes x 8 GPUs x 4 slots (8000 of 32768 MiB, 25% of the cores) = 224 fits for 200
    pods (plus 10 that can never fit), each node with its real plugin; the extender is
    SIGKILLed after 60 binds and restarted: every schedulable pod is bound and allocated, and no
    device holds more than it has. With each ``--node-lock``."""
    pool = NodePool(name=f"burst-{node_lock[:3]}", count=7, devices_per_node=8)
    gpu_nodes(pool)
    memory = {d["uuid"]: d["memory_mib"] for n in pool.node_names() for d in pool.devices(n)}
    killed_at: list[float] = []

    async def go(flags: tuple[str, ...]) -> list[Json]:
        async with hami_stack.client() as kube:
            sem = asyncio.Semaphore(40)

            async def make(i: int, limits: dict[str, str]) -> None:
                async with sem:
                    await kube.create(PODS, gpu_pod(f"b-{i:03d}", limits), namespace=hami_ns)

            await asyncio.gather(*(make(i, LIMITS) for i in range(200)), *(
                make(900 + i, {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "40000"})
                for i in range(10)))  # fmt: skip
            killed = False
            deadline = time.monotonic() + 360
            while time.monotonic() < deadline:
                pods = (await kube.list(PODS, namespace=hami_ns))["items"]
                bound = [p for p in pods if p["spec"].get("nodeName")]
                if not killed and len(bound) >= 60:
                    victim = hami_stack.extender_on()
                    killed_at.append(time.time())
                    victim.kill()
                    hami_stack.extender(None, *flags).wait_ready(60)
                    killed = True
                allocated = [p for p in bound if (p["metadata"].get("annotations") or {}).get(
                    BIND_PHASE) == PHASE_SUCCESS]  # fmt: skip
                if killed and len(allocated) >= 200:
                    return pods
                await asyncio.sleep(0.5)
            raise AssertionError(
                f"{len(bound)} of 200 pods bound, {len(allocated)} allocated; killed={killed}"
            )

    extra = () if node_lock == "memory" else ("--node-lock", node_lock)
    with scheduler_extender(hami_stack, *extra) as flags:
        pods = asyncio.run(go(flags))
    used: dict[str, int] = defaultdict(int)
    holders: dict[str, list[str]] = defaultdict(list)
    for pod in pods:
        name = pod["metadata"]["name"]
        if name.startswith("b-9"):
            assert not pod["spec"].get("nodeName"), f"{name} cannot fit anywhere"
            continue
        ann = pod["metadata"]["annotations"]
        devices = core.decode_pod_devices(ann[ALLOCATED])
        assert ann["hami.io/vgpu-node"] == pod["spec"]["nodeName"]
        for dev in devices[0]:
            used[dev.uuid] += dev.usedmem
            holders[dev.uuid].append(f"{name} (bound {ann.get('hami.io/bind-time')}, "
                                     f"filtered {ann.get('hami.io/vgpu-time')})")  # fmt: skip
    over = {u: (m, holders[u]) for u, m in used.items() if m > memory[u]}
    assert not over, f"over-committed devices (MiB, pods): {over}; extender killed at {killed_at}"


def test_standby_takes_over_within_seconds_and_keeps_allocations(hami_stack, hami_ns, gpu_nodes):
    [node] = gpu_nodes(NodePool(name="ha", count=1, devices_per_node=1,
                                device_memory_mib=16000))  # fmt: skip
    port = free_port()
    standby = hami_stack.extender(port, name="standby")
    standby.wait_ready(60, status=503)  # synced, but not the leader

    async def go() -> tuple[float, Json]:
        async with hami_stack.client() as kube:
            await kube.create(PODS, gpu_pod("held", LIMITS), namespace=hami_ns)
            await bound(kube, hami_ns, "held")  # by kube-scheduler and the leader
            hami_stack.extender_on().kill()  # the leader; SIGKILL: no Lease release
            began = time.monotonic()
            while standby.ready_status() != 200:
                assert time.monotonic() - began < 30, "the standby never took over"
                await asyncio.sleep(0.1)
            took = time.monotonic() - began
            # 9000 MiB more would exceed the one 16000 MiB card only if "held" were forgotten;
            # kube-scheduler would send this pod, as the leader's scheduler name.
            big = gpu_pod("second", {**LIMITS, "nvidia.com/gpumem": "9000"},
                          scheduler="hami-scheduler")  # fmt: skip
            big["metadata"].update(namespace=hami_ns, uid="uid-second")
            answer = await post(hami_stack, port, "filter", {"Pod": big, "NodeNames": [node]})
            return took, answer

    took, answer = asyncio.run(go())
    assert took < 15
    assert answer["NodeNames"] == []
    assert "CardInsufficientMemory" in answer["FailedNodes"][node]
    # The standby now serves the scheduler's port too: restart a leader on it for later tests.
    standby.kill()
    hami_stack.extender().wait_ready(60)


def test_a_pod_filtered_before_a_restart_binds_after_it(hami_stack, hami_ns, gpu_nodes):
    """With --persist-reservation filter (as HAMi) the allocation is on the pod from /filter on:
    an extender restarted between a pod's filter and its bind finds it in the API, reads the pod
    back (same UID, its scheduler, unbound, labelled for that node), and binds it."""
    [node] = gpu_nodes(NodePool(name="rst", count=1, devices_per_node=1))
    port = free_port()
    flags = ("--scheduler-name", MANUAL_SCHEDULER, "--lease-name", "hami-extender-restart",
             "--persist-reservation", "filter")  # fmt: skip
    hami_stack.extender(port, *flags, name="before").wait_ready(60)

    async def filtered() -> Json:
        async with hami_stack.client() as kube:
            pod = await unscheduled_pod(kube, hami_ns, "carried")
            answer = await post(hami_stack, port, "filter", {"Pod": pod, "NodeNames": [node]})
            assert answer["NodeNames"] == [node], answer
            return pod

    pod = asyncio.run(filtered())
    hami_stack.extender_on(port).kill()  # SIGKILL between filter and bind
    hami_stack.extender(port, *flags, name="after").wait_ready(60)

    async def bind() -> tuple[str, Json]:
        async with hami_stack.client() as kube:
            answer = await post(hami_stack, port, "bind", {
                "PodName": "carried", "PodNamespace": hami_ns, "PodUID": pod["metadata"]["uid"],
                "Node": node})  # fmt: skip
            return str(answer["Error"]), await bound(kube, hami_ns, "carried")

    error, after = asyncio.run(bind())
    hami_stack.extender_on(port).kill()
    assert error == ""
    assert after["spec"]["nodeName"] == node
