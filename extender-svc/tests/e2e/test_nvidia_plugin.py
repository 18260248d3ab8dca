"""The whole path with the real NVIDIA device plugin: webhook, kube-scheduler with the extender
(filter writes the devices, bind takes the node lock), then the plugin (its own process, fake
backend) answering the kubelet stand-in's Allocate from those annotations, marking the pod
``success`` and releasing the lock."""

from __future__ import annotations

import asyncio
from typing import Any

import hami_rustcore as core
import pytest
from hami_common.k8s import NODES, PODS, KubeClient
from hami_common.protocol.annotations import BIND_PHASE, NODE_LOCK
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.nodes import NodePool
from hami_e2e.waiting import eventually
from hami_extender.testing import ALLOCATED, gpu_pod

pytestmark = pytest.mark.e2e
Json = dict[str, Any]


def test_extender_placement_gets_its_env_from_the_plugin(hami_stack, hami_ns, gpu_nodes) -> None:  # type: ignore[no-untyped-def]
    [node] = gpu_nodes(NodePool(name="plug", count=1, devices_per_node=2), agents=False)

    async def main() -> None:
        async with GpuNode(hami_stack.cluster, node) as gpu, hami_stack.client() as kube:
            await gpu.wait_registered()
            limits = {
                "nvidia.com/gpu": "1",
                "nvidia.com/gpumem": "3000",
                "nvidia.com/gpucores": "30",
            }
            await kube.create(PODS, gpu_pod("p", limits), namespace=hami_ns)
            result = await gpu.kubelet.wait_allocation(hami_ns, "p", "cuda", within=90)
            assert result.error is None, result.error
            assert result.response is not None
            env = dict(result.response.envs)

            async def done() -> Json | None:
                pod = await kube.get(PODS, "p", namespace=hami_ns)
                ok = pod["metadata"]["annotations"].get(BIND_PHASE) == "success"
                return pod if ok else None

            pod = await eventually(done)
            [[dev]] = core.decode_pod_devices(pod["metadata"]["annotations"][ALLOCATED])
            assert pod["spec"]["nodeName"] == node
            assert env["NVIDIA_VISIBLE_DEVICES"] == dev.uuid
            assert env["CUDA_DEVICE_MEMORY_LIMIT_0"] == "3000m"
            assert env["CUDA_DEVICE_SM_LIMIT"] == "30"
            assert await _lock_free(kube, node)

    asyncio.run(main())


async def _lock_free(kube: KubeClient, node: str) -> bool:
    annotations = (await kube.get(NODES, node))["metadata"].get("annotations") or {}
    return NODE_LOCK not in annotations
