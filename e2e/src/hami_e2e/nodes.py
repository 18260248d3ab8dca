"""Fake accelerator nodes: kwok nodes built from a spec of devices, memory, NUMA and labels.

A `NodePool` describes identical nodes. Each becomes a Node that kwok manages (annotation
``kwok.x-k8s.io/node=fake``): kwok marks it Ready, keeps its Lease alive and runs its pods'
lifecycle. The device inventory is stored as JSON in the ``e2e.hami.io/devices`` annotation, for
the fake device backends and the harness's kubelet stand-in to read; the vendor's registration
annotations are left to the device plugins under test.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hami_common.k8s import NODES, KubeClient

from hami_e2e.components import KWOK_NODE_ANNOTATION

DEVICES_ANNOTATION = "e2e.hami.io/devices"
VENDORS = ("nvidia", "ascend", "cambricon")
POOL_LABEL = "e2e.hami.io/pool"


@dataclass(frozen=True)
class NodePool:
    """``count`` identical fake nodes named ``<name>-<i>``."""

    name: str = "kwok-gpu"
    count: int = 1
    devices_per_node: int = 4
    vendor: str = "nvidia"
    """``nvidia``, ``ascend`` (``model`` is the chip's DCMI name, e.g. ``910B3``) or
    ``cambricon``."""
    model: str = "NVIDIA-Tesla-V100-PCIE-32GB"
    device_memory_mib: int = 32768
    device_cores: int = 100
    numa_nodes: int = 1
    labels: Mapping[str, str] = field(default_factory=lambda: {"gpu": "on"})
    cpu: str = "64"
    memory: str = "512Gi"
    pods: int = 110
    # Extra capacity, e.g. {"nvidia.com/gpu": "40"} where no device plugin reports it.
    extended_resources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.count < 0 or self.devices_per_node < 0 or self.numa_nodes < 1:
            raise ValueError(f"invalid node pool {self!r}")
        if self.vendor not in VENDORS:
            raise ValueError(f"node pool {self.name}: vendor {self.vendor!r} is not one of "
                             f"{', '.join(VENDORS)}")  # fmt: skip

    def node_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]

    def _id(self, node: str, i: int) -> str:
        """A stable device ID in the vendor's own form: NVIDIA's ``GPU-<uuid>``, an Ascend
        NPU's VDIE die ID (five 32-bit words in hex), Cambricon's ``MLU-<uuid>``."""
        u = uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}/{i}")
        if self.vendor == "ascend":
            return "-".join(f"{(u.int >> (32 * k)) & 0xFFFFFFFF:08X}" for k in range(4)) + (
                f"-{i:08X}"
            )
        return f"{'MLU' if self.vendor == 'cambricon' else 'GPU'}-{u}"

    def devices(self, node: str) -> list[dict[str, Any]]:
        """The node's device inventory; devices are spread evenly over the NUMA nodes. An Ascend
        NPU also has its physical ID (the runtime's name for it)."""
        per_numa = max(1, -(-self.devices_per_node // self.numa_nodes))
        out = []
        for i in range(self.devices_per_node):
            dev: dict[str, Any] = {
                "index": i,
                "uuid": self._id(node, i),
                "vendor": self.vendor,
                "model": self.model,
                "memory_mib": self.device_memory_mib,
                "cores": self.device_cores,
                "numa": min(i // per_numa, self.numa_nodes - 1),
                "healthy": True,
            }
            if self.vendor == "ascend":
                dev["phy_id"] = i
            out.append(dev)
        return out

    def manifest(self, node: str) -> dict[str, Any]:
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}
        resources.update(self.extended_resources)
        labels = {
            "kubernetes.io/hostname": node,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            POOL_LABEL: self.name,
            **self.labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node,
                "labels": labels,
                "annotations": {
                    KWOK_NODE_ANNOTATION: "fake",
                    "node.alpha.kubernetes.io/ttl": "0",
                    DEVICES_ANNOTATION: json.dumps(self.devices(node), separators=(",", ":")),
                },
            },
            "spec": {},
            "status": {"capacity": resources, "allocatable": dict(resources)},
        }


def _ready(node: dict[str, Any]) -> bool:
    """Ready, and the node lifecycle controller has lifted its not-ready/unreachable taints
    (until then the scheduler would not place pods there)."""
    conditions = node.get("status", {}).get("conditions") or []
    taints = node.get("spec", {}).get("taints") or []
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    ) and not any(str(t.get("key", "")).startswith("node.kubernetes.io/") for t in taints)


async def create_nodes(
    kube: KubeClient,
    pools: Sequence[NodePool],
    *,
    wait_ready: float | None = 60.0,
    concurrency: int = 20,
) -> list[str]:
    """Create every pool's nodes; with ``wait_ready``, wait until kwok reports them Ready."""
    names: list[str] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(pool: NodePool, node: str) -> None:
        async with sem:
            await kube.create(NODES, pool.manifest(node))

    jobs = []
    for pool in pools:
        for node in pool.node_names():
            names.append(node)
            jobs.append(one(pool, node))
    await asyncio.gather(*jobs)
    if wait_ready is not None:
        await wait_nodes_ready(kube, names, wait_ready)
    return names


async def wait_nodes_ready(kube: KubeClient, names: Sequence[str], within: float) -> None:
    wanted = set(names)
    deadline = time.monotonic() + within
    while True:
        listed = await kube.list(NODES, label_selector="type=kwok")
        ready = {n["metadata"]["name"] for n in listed["items"] if _ready(n)}
        missing = wanted - ready
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(missing)} nodes not Ready after {within}s: {sorted(missing)[:5]}"
            )
        await asyncio.sleep(0.2)


async def delete_nodes(kube: KubeClient, pool: NodePool) -> None:
    """Delete a pool's nodes (by label, so leftovers of an earlier run go too)."""
    listed = await kube.list_metadata(NODES, label_selector=f"{POOL_LABEL}={pool.name}")
    await asyncio.gather(*(kube.delete(NODES, n["metadata"]["name"]) for n in listed["items"]))
