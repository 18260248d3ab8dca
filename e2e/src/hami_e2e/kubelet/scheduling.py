"""What HAMi's scheduler writes, for suites that run before (or without) the extender:
the filter-time annotations (control-plane reference §3.3), then at bind the node lock,
``bind-phase=allocating`` and ``bind-time`` (§3.4), then the Binding."""

from __future__ import annotations

import time
from typing import Any

from hami_common.k8s import PODS, KubeClient
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import (
    BIND_PHASE,
    BIND_TIME,
    PHASE_ALLOCATING,
    VGPU_NODE,
    VGPU_TIME,
)

TO_ALLOCATE = "hami.io/vgpu-devices-to-allocate"
ALLOCATED = "hami.io/vgpu-devices-allocated"
UNSCHEDULED = "hami-scheduler-absent"
"""A scheduler name no scheduler serves: the pod waits until the suite binds it."""


def gpu_pod(name: str, gpus: list[int], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod with one container per entry of ``gpus`` (its nvidia.com/gpu count)."""
    containers = []
    for i, count in enumerate(gpus):
        container: dict[str, Any] = {
            "name": f"c{i}",
            "image": "registry.k8s.io/pause:3.10",
            "resources": {"limits": {"nvidia.com/gpu": str(count)}},
        }
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        containers.append(container)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": UNSCHEDULED,
            "containers": containers,
            "terminationGracePeriodSeconds": 0,
        },
    }


async def annotate_filter(
    client: KubeClient, namespace: str, name: str, node: str, devices: str
) -> None:
    now = str(int(time.time()))
    annotations = {VGPU_NODE: node, VGPU_TIME: now, TO_ALLOCATE: devices, ALLOCATED: devices}
    patch = {"metadata": {"annotations": annotations, "labels": {VGPU_NODE: node}}}
    await client.patch(PODS, name, patch, namespace=namespace)


async def bind(client: KubeClient, namespace: str, name: str, node: str) -> None:
    """Takes the node lock, marks the pod allocating and binds it (HAMi's Bind)."""
    await nodelock.acquire(client, node, namespace, name)
    now = str(int(time.time()))
    patch = {"metadata": {"annotations": {BIND_PHASE: PHASE_ALLOCATING, BIND_TIME: now}}}
    await client.patch(PODS, name, patch, namespace=namespace)
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    await client.create(PODS, binding, namespace=namespace, name=name, subresource="binding")


async def place(
    client: KubeClient, namespace: str, pod: dict[str, Any], node: str, devices: str
) -> None:
    """Create, annotate and bind a pod as HAMi's scheduler would."""
    name = pod["metadata"]["name"]
    await client.create(PODS, pod, namespace=namespace)
    await annotate_filter(client, namespace, name, node, devices)
    await bind(client, namespace, name, node)
