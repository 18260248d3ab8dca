"""The NVIDIA plugin (its own process, fake backend) with the kubelet stand-in and the real
control plane: registration, Allocate for pods placed as HAMi's scheduler places them, and the
failure cases (the lock is released, other pods are untouched)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hami_rustcore
import pytest
from hami_common.k8s import EVENTS, NODES, PODS
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import BIND_PHASE, NVIDIA_PAIR_SCORE
from hami_e2e.backend import Cluster
from hami_e2e.kubelet.node import REGISTER, GpuNode
from hami_e2e.kubelet.scheduling import ALLOCATED, TO_ALLOCATE, gpu_pod, place
from hami_e2e.nodes import NodePool

pytestmark = pytest.mark.e2e

Nodes = Callable[[NodePool], list[str]]


def _pool(name: str) -> NodePool:
    return NodePool(name=name, count=1, devices_per_node=2, labels={"gpu": "on"})


async def _annotations(node: GpuNode, ns: str, name: str) -> dict[str, str]:
    assert node.client is not None
    pod = await node.client.get(PODS, name, namespace=ns)
    return dict(pod["metadata"].get("annotations") or {})


async def _lock_released(node: GpuNode) -> bool:
    assert node.client is not None
    return await nodelock.holder(node.client, node.node) is None


def test_registration_capacity_and_rewrite(kube_cluster: Cluster, fake_nodes: Nodes) -> None:
    [name] = fake_nodes(_pool("dp-reg"))

    async def main() -> None:
        async with GpuNode(kube_cluster, name) as node:
            devices = await node.wait_registered()
            assert [(d.id, d.count, d.devmem, d.type, d.health) for d in devices] == [
                (dev["uuid"], 10, 32768, "NVIDIA-Tesla-V100-PCIE-32GB", True)
                for dev in node.spec["devices"]
            ]
            assert node.kubelet.registrations[0].resource_name == "nvidia.com/gpu"
            # someone deletes the annotation: it is written again
            assert node.client is not None
            await node.client.patch(NODES, name, {"metadata": {"annotations": {REGISTER: None}}})
            assert await node.eventually(node.register_annotation, 15)
            # one device turns unhealthy: the annotation and allocatable say so
            node.set_health(1, False)
            await node.eventually(lambda: _health_is(node, [True, False]), 15)
            await node.eventually(lambda: _allocatable_is(node, (20, 10)), 15)
            # the plugin process dies: kubelet counts no allocatable; restarted, it registers
            node.stop_plugin()
            await node.eventually(lambda: _allocatable_is(node, (20, 0)), 15)
            node.set_health(1, True)
            node.start_plugin()
            await node.eventually(lambda: _allocatable_is(node, (20, 20)), 30)
            assert len(node.kubelet.registrations) == 2

    asyncio.run(main())


async def _health_is(node: GpuNode, expected: list[bool]) -> bool:
    devices = await node.register_annotation()
    return devices is not None and [d.health for d in devices] == expected


async def _allocatable_is(node: GpuNode, expected: tuple[int, int]) -> bool:
    return await node.allocatable() == expected


def test_pod_gets_the_env_and_mounts_of_its_devices(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Nodes
) -> None:
    [name] = fake_nodes(_pool("dp-alloc"))
    ns = kube_namespace

    async def main() -> None:
        async with GpuNode(kube_cluster, name) as node:
            await node.wait_registered()
            assert node.client is not None
            a, b = (d["uuid"] for d in node.spec["devices"])
            devices = f"{a},NVIDIA,3000,30:;{a},NVIDIA,2000,20:{b},NVIDIA,4000,20:;"
            await place(node.client, ns, gpu_pod("two", [1, 2]), name, devices)
            first = await node.kubelet.wait_allocation(ns, "two", "c0")
            second = await node.kubelet.wait_allocation(ns, "two", "c1")
            assert first.error is None, first.error
            assert second.error is None, second.error
            assert first.response is not None
            assert second.response is not None
            env0, env1 = dict(first.response.envs), dict(second.response.envs)
            assert env0["NVIDIA_VISIBLE_DEVICES"] == a
            assert env0["CUDA_DEVICE_MEMORY_LIMIT_0"] == "3000m"
            assert env0["CUDA_DEVICE_SM_LIMIT"] == "30"
            assert env1["NVIDIA_VISIBLE_DEVICES"] == f"{a},{b}"
            assert (env1["CUDA_DEVICE_MEMORY_LIMIT_0"], env1["CUDA_DEVICE_MEMORY_LIMIT_1"]) == (
                "2000m",
                "4000m",
            )
            mounts = {m.container_path: m for m in second.response.mounts}
            assert mounts["/etc/ld.so.preload"].read_only
            limits = mounts["/etc/hami/vgpu-limits.conf"]
            assert limits.read_only
            text = Path(limits.host_path).read_text(encoding="utf-8")  # noqa: ASYNC240
            assert "CUDA_DEVICE_MEMORY_LIMIT_1=4000m\n" in text
            uid = (await node.client.get(PODS, "two", namespace=ns))["metadata"]["uid"]
            assert mounts[str(node.hook_path / "vgpu")].host_path.endswith(f"{uid}_c1")
            ann = await _annotations(node, ns, "two")
            assert ann[BIND_PHASE] == "success"
            assert ann[TO_ALLOCATE] == ";;"
            assert ann[ALLOCATED] == devices
            assert await _lock_released(node)

    asyncio.run(main())


def test_failures_release_the_lock_and_leave_other_pods_intact(
    kube_cluster: Cluster, kube_namespace: str, fake_nodes: Nodes
) -> None:
    [name] = fake_nodes(_pool("dp-fail"))
    ns = kube_namespace

    async def main() -> None:
        async with GpuNode(kube_cluster, name) as node:
            await node.wait_registered()
            assert node.client is not None
            a, b = (d["uuid"] for d in node.spec["devices"])
            good = f"{a},NVIDIA,1000,10:;"
            await place(node.client, ns, gpu_pod("good", [1]), name, good)
            assert (await node.kubelet.wait_allocation(ns, "good", "c0")).error is None
            before = await _annotations(node, ns, "good")

            cases: dict[str, tuple[list[int], str, str]] = {
                "garbage": ([1], f"{b},NVIDIA:;", "expected UUID,Type,Usedmem,Usedcores"),
                "count": ([2], f"{b},NVIDIA,1000,10:;", "device number not matched"),
                "priority": ([1], f"{b},NVIDIA,1000,10:;", "CUDA_TASK_PRIORITY"),
            }
            for pod_name, (gpus, devices, message) in cases.items():
                env = {"CUDA_TASK_PRIORITY": "high"} if pod_name == "priority" else None
                await place(node.client, ns, gpu_pod(pod_name, gpus, env=env), name, devices)
                result = await node.kubelet.wait_allocation(ns, pod_name, "c0")
                assert result.response is None
                assert result.error is not None
                assert message in result.error, result.error
                ann = await _annotations(node, ns, pod_name)
                assert ann[BIND_PHASE] == "failed"
                assert ann[TO_ALLOCATE] == devices  # nothing consumed
                assert await _lock_released(node)
                events = await node.client.list(
                    EVENTS, namespace=ns, field_selector=f"involvedObject.name={pod_name}"
                )
                reasons = [(e["reason"], e["message"]) for e in events["items"]]
                assert any(r == "HAMiAllocationFailed" and message in m for r, m in reasons), (
                    reasons
                )
            assert await _annotations(node, ns, "good") == before
            # the node still allocates after the failures
            await place(node.client, ns, gpu_pod("after", [1]), name, f"{b},NVIDIA,500,5:;")
            after = await node.kubelet.wait_allocation(ns, "after", "c0")
            assert after.error is None
            assert after.response is not None
            assert after.response.envs["NVIDIA_VISIBLE_DEVICES"] == b

    asyncio.run(main())


def test_pair_scores_and_the_asymmetric_link_event(
    kube_cluster: Cluster, fake_nodes: Nodes
) -> None:
    [name] = fake_nodes(NodePool(name="dp-topo", count=1, devices_per_node=3))

    def links(spec: dict[str, Any]) -> None:
        a, b, c = spec["devices"]
        a["links"] = {
            b["uuid"]: {"p2p": "SameBoard", "nvlinks": 2},
            c["uuid"]: {"p2p": "HostBridge"},
        }
        b["links"] = {a["uuid"]: {"p2p": "SameBoard", "nvlinks": 2}}
        c["links"] = {a["uuid"]: {"p2p": "SameCPU"}}

    async def main() -> None:
        async with GpuNode(
            kube_cluster, name, extra_args=("--enable-topology-score",), edit_spec=links
        ) as node:
            await node.wait_registered()
            assert node.client is not None
            a, b, c = (d["uuid"] for d in node.spec["devices"])
            annotations = (await node.client.get(NODES, name))["metadata"]["annotations"]
            scores = dict(hami_rustcore.decode_pair_scores(annotations[NVIDIA_PAIR_SCORE]))
            assert scores[a] == {b: 260, c: 0}
            assert scores[c] == {a: 0, b: 0}

            async def event() -> list[dict[str, Any]]:
                assert node.client is not None
                listed = await node.client.list(
                    EVENTS, namespace="default", field_selector=f"involvedObject.name={name}"
                )
                return [e for e in listed["items"] if e["reason"] == "AsymmetricGPUP2PLink"]

            [warning] = await node.eventually(event, 15)
            assert f"{a}<->{c}" in warning["message"]

    asyncio.run(main())
