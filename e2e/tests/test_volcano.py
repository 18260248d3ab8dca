"""The volcano path end to end on the real control plane: our NVIDIA plugin in volcano mode
(``--scheduler volcano``, its own process, fake backend) behind kubelet's device-manager stand-in,
and `VolcanoDeviceshareStandIn` in place of volcano-scheduler, whose Go module these machines
cannot fetch. No HAMi extender or webhook runs on this path.

The stand-in plays only volcano's ``deviceshare`` step (``VGPUEnable`` and ``NodeLockEnable``)
and follows volcano's code, not ours: it reads the node with volcano's decoder rules, fits with
volcano's rules and writes volcano's annotations with its own string code (none of it goes
through our Rust codecs, so the plugin's output is checked against volcano's reading of it).
Sources, volcano-sh/volcano at ed72c7c8: ``pkg/scheduler/api/devices/nvidia/vgpu/device_info.go``
(``NewGPUDevices``, ``Allocate``), ``utils.go`` (``decodeNodeDevices``, ``resourcereqs``,
``checkNodeGPUSharingPredicateAndScore``, ``encodePodDevices``),
``pkg/scheduler/plugins/util/nodelock/nodelock.go`` (``LockNode``) and
``pkg/scheduler/cache/cache.go`` (``DefaultBinder.Bind``: the allocation annotations ride on the
Binding; volcano 1.9 patched them onto the pod before binding instead: both are run here).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hami_common.k8s import NODES, PODS, KubeClient
from hami_e2e.backend import Cluster
from hami_e2e.kubelet.manager import Allocation
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.nodes import NodePool
from hami_rustcore import quantity_value

pytestmark = pytest.mark.e2e

Nodes = Callable[[NodePool], list[str]]
Json = dict[str, Any]

REGISTER = "volcano.sh/node-vgpu-register"
NUMBER, MEMORY, CORES = "volcano.sh/vgpu-number", "volcano.sh/vgpu-memory", "volcano.sh/vgpu-cores"
IDS, TO_ALLOCATE, PHASE = (
    "volcano.sh/vgpu-ids-new",
    "volcano.sh/devices-to-allocate",
    ("volcano.sh/bind-phase"),
)
LOCK = "hamivgpu"  # volcano's vgpu DeviceName, the lock's annotation key
DEVICE_MIB = 4096


class VolcanoDeviceshareStandIn:
    """A stand-in for volcano-scheduler's deviceshare vGPU step, for one pod on one node."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    @staticmethod
    def node_devices(node: Json) -> list[dict[str, Any]] | None:
        """``NewGPUDevices``: no vGPU unless the three resources are allocatable and the
        annotation decodes (``decodeNodeDevices``: a device with fewer than 6 fields drops
        the node)."""
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        if any(int(allocatable.get(r, "0")) == 0 for r in (NUMBER, CORES, MEMORY)):
            return None
        text = (node["metadata"].get("annotations") or {}).get(REGISTER, "")
        if ":" not in text:
            return None
        devices = []
        for item in text.split(":"):
            if "," not in item:
                continue
            f = item.split(",")
            if len(f) < 6:
                return None
            devices.append(
                {
                    "uuid": f[0],
                    "number": int(f[1]),
                    "memory": int(f[2]),
                    "type": f[3],
                    "health": f[4] == "true",
                    "num": 0,
                    "mem": 0,
                    "core": 0,
                }
            )
        return devices

    @staticmethod
    def requests(pod: Json) -> list[tuple[int, int, int, int]]:
        """``resourcereqs``: (nums, memreq, mem percentage, coresreq) per container with
        vgpu-number or vgpu-memory in its limits."""
        out = []
        for c in pod["spec"]["containers"]:
            limits = (c.get("resources") or {}).get("limits") or {}
            if NUMBER not in limits and MEMORY not in limits:
                continue
            nums = quantity_value(limits.get(NUMBER, "1"))
            mem = quantity_value(limits.get(MEMORY, "0"))
            pct = quantity_value(limits.get("volcano.sh/vgpu-memory-percentage", "101"))
            out.append(
                (
                    nums,
                    mem,
                    100 if pct == 101 and mem == 0 else pct,
                    quantity_value(limits.get(CORES, "0")),
                )
            )
        return out

    async def add_usage(self, node: str, devices: list[dict[str, Any]]) -> None:
        """``AddResource`` of every pod on the node: its ``vgpu-ids-new``."""
        pods = await self.client.list(PODS, field_selector=f"spec.nodeName={node}")
        by_uuid = {d["uuid"]: d for d in devices}
        for pod in pods["items"]:
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                continue
            for container in (pod["metadata"].get("annotations") or {}).get(IDS, "").split(";"):
                for item in container.split(":"):
                    if "," in item:
                        uuid, _, mem, cores = item.split(",")[:4]
                        d = by_uuid[uuid]
                        d["num"], d["mem"], d["core"] = (
                            d["num"] + 1,
                            d["mem"] + int(mem),
                            (d["core"] + int(cores)),
                        )

    @staticmethod
    def fit(devices: list[dict[str, Any]], reqs: list[tuple[int, int, int, int]]) -> str | None:
        """``checkNodeGPUSharingPredicateAndScore`` (hami-core sharing, no policy): devices
        walked from the last; the encoded list, or None when the pod does not fit."""
        containers = []
        for wanted, mem, pct, cores in reqs:
            if wanted > len(devices):
                return None
            nums = wanted
            chosen = ""
            for d in reversed(devices):
                need = mem if mem or pct == 101 else d["memory"] * pct // 100
                if (
                    d["number"] <= d["num"]
                    or d["memory"] - d["mem"] < need
                    or d["core"] + cores > 100
                    or (cores == 100 and d["num"] > 0)
                    or (d["core"] == 100 and cores == 0)
                    or "NVIDIA" not in d["type"]
                ):
                    continue
                d["num"], d["mem"], d["core"] = d["num"] + 1, d["mem"] + need, d["core"] + cores
                chosen += f"{d['uuid']},NVIDIA,{need},{cores}:"
                nums -= 1
                if nums == 0:
                    break
            if nums > 0:
                return None
            containers.append(chosen)
        return ";".join(containers)

    async def lock(self, node: str) -> None:
        """``LockNode(node, "hamivgpu")``: the time in RFC 3339, refused within 5 minutes."""
        obj = await self.client.get(NODES, node)
        held = (obj["metadata"].get("annotations") or {}).get(LOCK)
        now = datetime.now(UTC)
        if held and now - datetime.fromisoformat(held.replace("Z", "+00:00")) < timedelta(
            minutes=5
        ):
            raise RuntimeError(f"node {node} has been locked within 5 minutes")
        obj["metadata"].setdefault("annotations", {})[LOCK] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.client.replace(NODES, obj)

    async def schedule(self, ns: str, name: str, node: str, *, on_binding: bool = True) -> bool:
        """Places the pod on ``node`` as volcano does; False (and nothing written) when it does
        not fit. ``on_binding``: the annotations ride on the Binding (current volcano); else
        they are patched onto the pod first (volcano 1.9)."""
        pod = await self.client.get(PODS, name, namespace=ns)
        devices = self.node_devices(await self.client.get(NODES, node))
        if devices is None:
            return False
        await self.add_usage(node, devices)
        encoded = self.fit(devices, self.requests(pod))
        if encoded is None:
            return False
        await self.lock(node)
        now = str(int(time.time()))
        annotations = {
            "volcano.sh/vgpu-node": node,
            "volcano.sh/vgpu-time": now,
            IDS: encoded,
            TO_ALLOCATE: encoded,
            PHASE: "allocating",
            "volcano.sh/bind-time": now,
        }
        binding: Json = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        if on_binding:
            binding["metadata"]["annotations"] = annotations
        else:
            await self.client.patch(
                PODS, name, {"metadata": {"annotations": annotations}}, namespace=ns
            )
        await self.client.create(PODS, binding, namespace=ns, name=name, subresource="binding")
        return True


def vgpu_pod(name: str, *containers: dict[str, str]) -> Json:
    """A pod for volcano (no scheduler serves it here: the stand-in binds it); one container
    per limits mapping, plus a sidecar without vGPU first."""
    spec: list[Json] = [{"name": "sidecar", "image": "registry.k8s.io/pause:3.10"}]
    spec += [
        {"name": f"c{i}", "image": "registry.k8s.io/pause:3.10", "resources": {"limits": limits}}
        for i, limits in enumerate(containers)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": "volcano",
            "containers": spec,
            "terminationGracePeriodSeconds": 0,
        },
    }


async def _registered(node: GpuNode) -> Json | None:
    """The node once volcano would take it: registered, the three resources allocatable."""
    assert node.client is not None
    obj = await node.client.get(NODES, node.node)
    ok = VolcanoDeviceshareStandIn.node_devices(obj)
    return obj if ok is not None and len(ok) == len(node.spec["devices"]) else None


@pytest.fixture
def volcano_node(fake_nodes: Nodes) -> str:
    """A node of the test's own: pods of an earlier test whose namespace is still being deleted
    stay bound to that test's node, where volcano (and the stand-in) would count them."""
    pool = NodePool(
        name=f"volcano-{secrets.token_hex(3)}", count=1, devices_per_node=2,
        device_memory_mib=DEVICE_MIB,
    )  # fmt: skip
    [name] = fake_nodes(pool)
    return name


async def allocated(node: GpuNode, ns: str, pod: str, container: str, ids: int) -> Allocation:
    """The container's allocation once kubelet has allocated all of its ``ids`` device IDs
    (one Allocate per resource: the first answer is not the whole)."""
    key = (ns, pod, container)
    got = node.kubelet.allocations
    await node.kubelet.wait_for(lambda: key in got and len(got[key].device_ids) >= ids, 30)
    return got[key]


def test_plugin_registers_for_volcano_and_allocates_the_pods_it_places(
    kube_cluster: Cluster, kube_namespace: str, volcano_node: str
) -> None:
    ns, name = kube_namespace, volcano_node

    async def main() -> None:
        async with GpuNode(kube_cluster, name, extra_args=("--scheduler", "volcano")) as node:
            obj = await node.eventually(lambda: _registered(node), 30)
            a, b = (d["uuid"] for d in node.spec["devices"])
            assert obj["metadata"]["annotations"][REGISTER] == (
                f"{a},10,{DEVICE_MIB},NVIDIA-Tesla-V100-PCIE-32GB,true,hami-core:"
                f"{b},10,{DEVICE_MIB},NVIDIA-Tesla-V100-PCIE-32GB,true,hami-core:"
            )
            assert "hami.io/node-nvidia-register" not in obj["metadata"]["annotations"]
            allocatable = obj["status"]["allocatable"]
            assert (allocatable[NUMBER], allocatable[MEMORY], allocatable[CORES]) == (
                "20",
                str(2 * DEVICE_MIB),
                "200",
            )
            assert node.client is not None
            volcano = VolcanoDeviceshareStandIn(node.client)
            # two GPUs of 3000 MiB in one container, on the Binding (current volcano)
            two = vgpu_pod("two", {NUMBER: "2", MEMORY: "3000", CORES: "30"})
            await node.client.create(PODS, two, namespace=ns)
            assert await volcano.schedule(ns, "two", name)
            got = await allocated(node, ns, "two", "c0", 2 + 3000 + 30)
            assert got.error is None, got.error
            # kubelet allocated all three resources (3000 is "3k" once the API server wrote it)
            assert len(got.device_ids) == 2 + 3000 + 30
            assert got.response is not None
            env = dict(got.response.envs)
            assert sorted(env["NVIDIA_VISIBLE_DEVICES"].split(",")) == sorted([a, b])
            assert (env["CUDA_DEVICE_MEMORY_LIMIT_0"], env["CUDA_DEVICE_MEMORY_LIMIT_1"]) == (
                "3000m",
                "3000m",
            )
            assert env["CUDA_DEVICE_SM_LIMIT"] == "30"
            limits = {m.container_path: m for m in got.response.mounts}[
                "/etc/hami/vgpu-limits.conf"
            ]
            assert limits.read_only
            text = Path(limits.host_path).read_text(encoding="utf-8")  # noqa: ASYNC240
            assert "CUDA_DEVICE_MEMORY_LIMIT_1=3000m\n" in text
            await node.eventually(lambda: _phase(node, ns, "two", "success"), 15)
            await node.eventually(lambda: _unlocked(node), 15)  # released after the success mark
            # a second pod, annotations patched before the Binding (volcano 1.9)
            one = vgpu_pod("one", {NUMBER: "1", MEMORY: "1000"})
            await node.client.create(PODS, one, namespace=ns)
            assert await volcano.schedule(ns, "one", name, on_binding=False)
            got = await allocated(node, ns, "one", "c0", 1 + 1000)
            assert got.error is None, got.error
            assert got.response is not None
            assert got.response.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "1000m"
            assert got.response.envs["CUDA_DEVICE_SM_LIMIT"] == "0"
            ann = await node.eventually(lambda: _phase(node, ns, "one", "success"), 15)
            assert ann[TO_ALLOCATE] == ""
            assert ann["volcano.sh/vgpu-time"] == str(2**64 - 1)
            await node.eventually(lambda: _unlocked(node), 15)

    asyncio.run(main())


def test_a_pod_that_does_not_fit_is_not_placed_and_takes_no_lock(
    kube_cluster: Cluster, kube_namespace: str, volcano_node: str
) -> None:
    ns, name = kube_namespace, volcano_node

    async def main() -> None:
        async with GpuNode(kube_cluster, name, extra_args=("--scheduler", "volcano")) as node:
            await node.eventually(lambda: _registered(node), 30)
            assert node.client is not None
            volcano = VolcanoDeviceshareStandIn(node.client)
            # more memory than one GPU registered, then more GPUs than the node has
            for pod_name, limits in (
                ("big", {NUMBER: "1", MEMORY: str(DEVICE_MIB + 1)}),
                ("three", {NUMBER: "3"}),
            ):
                await node.client.create(PODS, vgpu_pod(pod_name, limits), namespace=ns)
                assert not await volcano.schedule(ns, pod_name, name)
                pod = await node.client.get(PODS, pod_name, namespace=ns)
                assert "nodeName" not in pod["spec"]
                assert IDS not in (pod["metadata"].get("annotations") or {})
                assert await _lock(node) is None
            # one GPU's memory all but taken: a second pod wanting more than is left does not fit
            await node.client.create(
                PODS, vgpu_pod("most", {NUMBER: "2", MEMORY: "3500"}), namespace=ns
            )
            assert await volcano.schedule(ns, "most", name)
            await node.eventually(lambda: _phase(node, ns, "most", "success"), 15)
            await node.client.create(PODS, vgpu_pod("rest", {MEMORY: "1000"}), namespace=ns)
            assert not await volcano.schedule(ns, "rest", name)
            assert node.kubelet.allocations.keys() == {(ns, "most", "c0")}

    asyncio.run(main())


async def _phase(node: GpuNode, ns: str, name: str, phase: str) -> dict[str, str] | None:
    assert node.client is not None
    pod = await node.client.get(PODS, name, namespace=ns)
    ann: dict[str, str] = pod["metadata"].get("annotations") or {}
    return ann if ann.get(PHASE) == phase else None


async def _unlocked(node: GpuNode) -> bool:
    return await _lock(node) is None


async def _lock(node: GpuNode) -> str | None:
    assert node.client is not None
    obj = await node.client.get(NODES, node.node)
    value: str | None = (obj["metadata"].get("annotations") or {}).get(LOCK)
    return value
