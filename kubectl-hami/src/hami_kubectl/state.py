"""What the API server says: every node's devices (each vendor's register annotation), the pods
placed on them with their devices (each vendor's allocated annotation), and so what is promised
on each device, as the extender counts it (pods that finished promise nothing)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import hami_rustcore as core
from hami_common.deviceplugin.vendor import containers_in_annotation_order
from hami_common.k8s import NODES, PODS, KubeClient
from hami_common.protocol.annotations import VGPU_NODE

Json = dict[str, Any]


@dataclass(frozen=True)
class Device:
    node: str
    index: int
    uuid: str
    type: str
    memory_mib: int
    cores: int
    healthy: bool


@dataclass(frozen=True)
class Holding:
    """One container's part of one device."""

    namespace: str
    pod: str
    container: str
    node: str
    uuid: str
    vendor: str
    memory_mib: int
    cores: int


@dataclass
class Cluster:
    devices: list[Device] = field(default_factory=list)
    holdings: list[Holding] = field(default_factory=list)

    def promised(self) -> dict[str, tuple[int, int, int]]:
        """Device UUID -> (memory MiB, cores, containers) promised."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for h in self.holdings:
            t = out[h.uuid]
            t[0] += h.memory_mib
            t[1] += h.cores
            t[2] += 1
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def specs() -> dict[str, dict[str, Any]]:
    return core.Cluster().vendor_specs()


def node_devices(node: Json) -> list[Device]:
    meta = node.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    out = []
    for vendor, spec in specs().items():
        text = annotations.get(spec["register_annotation"]) if spec["register_annotation"] else None
        if not text:
            continue
        try:
            devices = core.decode_node_devices(text, vendor)
        except core.DecodeError:
            continue
        out += [Device(meta.get("name", ""), d.index, d.id, d.type, d.devmem, d.devcore, d.health)
                for d in devices]  # fmt: skip
    return out


def holdings(pod: Json) -> list[Holding]:
    """The devices each container of a placed pod holds (none once it finished)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    annotations = meta.get("annotations") or {}
    node = annotations.get(VGPU_NODE) or (pod.get("spec") or {}).get("nodeName") or ""
    if status.get("phase") in ("Succeeded", "Failed"):
        return []
    containers = containers_in_annotation_order(pod)
    out = []
    for vendor, spec in specs().items():
        text = annotations.get(spec["allocated_annotation"])
        if not text:
            continue
        try:
            entries = core.decode_pod_devices(text)
        except core.DecodeError:
            continue
        for i, entry in enumerate(entries):
            name = str(containers[i].get("name", i)) if i < len(containers) else str(i)
            out += [Holding(meta.get("namespace", ""), meta.get("name", ""), name, node, d.uuid,
                            vendor, d.usedmem, d.usedcores) for d in entry]  # fmt: skip
    return out


async def load(client: KubeClient) -> Cluster:
    nodes = await client.list(NODES)
    pods = await client.list(PODS, label_selector=VGPU_NODE)
    cluster = Cluster()
    for node in nodes.get("items") or []:
        cluster.devices += node_devices(node)
    for pod in pods.get("items") or []:
        cluster.holdings += holdings(pod)
    cluster.devices.sort(key=lambda d: (d.node, d.index, d.uuid))
    return cluster
