"""Devices from the nodes' register annotations, holdings from the pods' allocations."""

from __future__ import annotations

import hami_rustcore as core
from hami_kubectl.state import Cluster, holdings, node_devices

REGISTER = "hami.io/node-nvidia-register"
ALLOCATED = "hami.io/vgpu-devices-allocated"


def node(name: str) -> dict[str, object]:
    devs = [core.Device(f"GPU-{name}-{i}", 10, 16384, 100, "NVIDIA-Tesla-T4", index=i)
            for i in range(2)]  # fmt: skip
    return {"metadata": {"name": name, "annotations": {REGISTER: core.encode_node_devices(devs)}}}


def pod(name: str, value: str, phase: str = "Running") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "ns", "annotations": {
                ALLOCATED: value, "hami.io/vgpu-node": "n1"}},
            "spec": {"nodeName": "n1", "initContainers": [{"name": "init"}],
                     "containers": [{"name": "main"}]},
            "status": {"phase": phase}}  # fmt: skip


def test_devices_of_a_node() -> None:
    devs = node_devices(node("n1"))
    assert [(d.node, d.index, d.uuid, d.memory_mib) for d in devs] == [
        ("n1", 0, "GPU-n1-0", 16384), ("n1", 1, "GPU-n1-1", 16384)]  # fmt: skip
    assert node_devices({"metadata": {"name": "plain"}}) == []


def test_holdings_by_container_and_promised() -> None:
    value = ";GPU-n1-0,NVIDIA,3000,30:;"  # the init container holds nothing
    cluster = Cluster(holdings=[*holdings(pod("a", value)), *holdings(pod("b", value)),
                                *holdings(pod("done", value, phase="Succeeded"))])  # fmt: skip
    assert [(h.pod, h.container, h.uuid) for h in cluster.holdings] == [
        ("a", "main", "GPU-n1-0"), ("b", "main", "GPU-n1-0")]  # fmt: skip
    assert cluster.promised() == {"GPU-n1-0": (6000, 60, 2)}
