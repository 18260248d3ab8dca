"""A fake accelerator node end to end: its vendor's device plugin as its own process (fake
backend, the node's device spec; NVIDIA, Ascend or Cambricon, see `hami_e2e.vendors`) and the
device-manager stand-in in the test's event loop, talking over real unix sockets, against the
real API server. The plugin exports its spans (Allocate) to the cluster's Jaeger, as its service
(``hami-plugin-nvidia``, ...).

    async with GpuNode(kube_cluster, "kwok-gpu-0", workdir) as node:
        await node.wait_registered()
        ...  # bind a pod to the node
        answer = await node.kubelet.wait_allocation(ns, pod, "main")
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import hami_rustcore
from hami_common.k8s import NODES, KubeClient

from hami_e2e.components import free_port
from hami_e2e.jaeger import otel_env
from hami_e2e.kubelet.manager import DeviceManager
from hami_e2e.nodes import DEVICES_ANNOTATION
from hami_e2e.observe import Containers, monitor_process, on_allocation
from hami_e2e.process import ManagedProcess, ProcessError
from hami_e2e.vendors import CAMBRICON, VendorAgent, agent_for, device_config

REGISTER = "hami.io/node-nvidia-register"
RESOURCE = "nvidia.com/gpu"


class _Cluster(Protocol):
    kubeconfig: Path
    logs: Path

    @property
    def otlp_endpoint(self) -> str | None: ...

    def client(self) -> KubeClient: ...


def spec_from_node(node: dict[str, Any]) -> dict[str, Any]:
    """The fake backend's spec from the node pool's inventory annotation."""
    devices = json.loads(node["metadata"]["annotations"][DEVICES_ANNOTATION])
    return {"devices": devices}


def write_spec(root: Path, spec: dict[str, Any]) -> Path:
    """The fake backend's spec file in a node's folder, replaced whole (the plugin re-reads it
    for health changes and must never see half of it)."""
    path = root / "spec.json"
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(spec), encoding="utf-8")
    staged.replace(path)
    return path


def plugin_process(
    cluster: _Cluster,
    node: str,
    root: Path,
    device_config: dict[str, Any],
    extra_args: tuple[str, ...] = (),
    *,
    detachable: bool = False,
    agent: VendorAgent | None = None,
) -> ManagedProcess:
    """The device plugin of one fake node (``agent``: its vendor's, NVIDIA's by default; fake
    backend reading ``root/spec.json``), as a process exporting its spans to the cluster's
    Jaeger; not started."""
    agent = agent or agent_for([])
    config = root / "device-config.json"
    config.write_text(json.dumps(device_config), encoding="utf-8")
    argv = [
        sys.executable, "-m", agent.module,
        "--node-name", node,
        *agent.args(root, config),
        "--plugin-dir", str(root / "dp"),
        "--kubeconfig", str(cluster.kubeconfig),
        "--socket-poll-interval", "0.1",
        *(["--register-interval", "0.5"] if agent.register else []),
        *extra_args,
    ]  # fmt: skip
    env = {**os.environ, **otel_env(cluster.otlp_endpoint, agent.service)}
    log = cluster.logs / f"plugin-{node}.log"
    return ManagedProcess(f"plugin-{node}", argv, log, env=env, die_with_parent=not detachable)


def kubelet_process(
    cluster: _Cluster, nodes: list[tuple[str, Path]], *, detachable: bool = False,
    run_containers: bool = False, dra: bool = False,
) -> ManagedProcess:  # fmt: skip
    """kubelet's device-manager stand-in for ``(node, folder)`` pairs as a process of its own
    (``python -m hami_e2e.kubelet``); ``run_containers``: it also starts each allocated
    container's workload (`hami_e2e.observe`); ``dra``: kubelet's DRA manager instead, for the
    DRA driver registering in ``<folder>/reg`` (`hami_e2e.dra.start_drivers`); not started."""
    argv = [sys.executable, "-m", "hami_e2e.kubelet", "--kubeconfig", str(cluster.kubeconfig)]
    if run_containers:
        argv.append("--run-containers")
    if dra:
        argv.append("--dra")
    for node, root in nodes:
        argv += ["--node", node, "--plugin-dir", str(root / ("reg" if dra else "dp"))]
    name = f"kubelet-{nodes[0][0]}" if len(nodes) == 1 else f"kubelet-{nodes[0][0]}-and-more"
    return ManagedProcess(name, argv, cluster.logs / f"{name}.log",
                          die_with_parent=not detachable)  # fmt: skip


@dataclass
class NodeAgents:
    """What runs on fake nodes as on real ones: each node's device plugin (its vendor's), and
    kubelet's device-manager role for all of them (one process), each a process of its own."""

    nodes: list[str]
    processes: list[ManagedProcess] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    monitors: dict[str, int] = field(default_factory=dict)
    """Node -> its monitor's port (with ``observe``)."""

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


async def start_agents(
    cluster: _Cluster,
    kube: KubeClient,
    nodes: list[str],
    *,
    split_count: int = 10,
    detachable: bool = False,
    within: float = 90.0,
    observe: bool = False,
) -> NodeAgents:
    """Starts the agents of existing fake nodes (`NodePool` nodes, whose inventory annotation
    becomes each plugin's fake spec) and waits until every plugin has registered its node and
    kubelet's stand-in publishes its devices. ``observe``: each GPU node also gets its monitor,
    and allocated containers run real work (`hami_e2e.observe`). On failure, stops what it
    started."""
    agents = NodeAgents(list(nodes))
    vendor: dict[str, VendorAgent] = {}
    try:
        for node in nodes:
            root = node_folder(node)
            agents.folders.append(root)
            spec = spec_from_node(await kube.get(NODES, node))
            vendor[node] = agent_for(spec["devices"], split_count)
            write_spec(root, spec)
        kubelet = kubelet_process(cluster, list(zip(nodes, agents.folders, strict=True)),
                                  detachable=detachable, run_containers=observe)  # fmt: skip
        kubelet.start()
        agents.processes.append(kubelet)
        deadline = time.monotonic() + within
        while not all((root / "dp" / "kubelet.sock").exists() for root in agents.folders):
            kubelet.check()
            if time.monotonic() > deadline:
                raise ProcessError(f"kubelet stand-in never served its sockets: {kubelet.log}")
            await asyncio.sleep(0.1)
        config = device_config(split_count)
        for node, root in zip(nodes, agents.folders, strict=True):
            plugin = plugin_process(cluster, node, root, config, detachable=detachable,
                                    agent=vendor[node])  # fmt: skip
            plugin.start()
            agents.processes.append(plugin)
        for node, root in zip(nodes, agents.folders, strict=True) if observe else ():
            if vendor[node].vendor != "nvidia":
                continue  # the monitor reads what the CUDA hook writes
            agents.monitors[node] = free_port()
            monitor = monitor_process(cluster, node, root, agents.monitors[node],
                                      detachable=detachable)  # fmt: skip
            monitor.start()
            agents.processes.append(monitor)
        for node in nodes:
            await _wait_registered(kube, node, vendor[node], agents.processes, deadline)
    except BaseException:
        agents.stop()
        raise
    return agents


async def _wait_registered(
    kube: KubeClient, node: str, agent: VendorAgent, processes: list[ManagedProcess],
    deadline: float,
) -> None:  # fmt: skip
    while True:
        for proc in processes:
            proc.check()
        obj = await kube.get(NODES, node)
        devices = json.loads(obj["metadata"]["annotations"][DEVICES_ANNOTATION])
        allocatable = (obj.get("status") or {}).get("allocatable") or {}
        ann = obj["metadata"].get("annotations") or {}
        registered = agent.register is None or agent.register in ann
        if registered and allocatable.get(agent.resource) == str(len(devices) * agent.per_device):
            return
        if time.monotonic() > deadline:
            raise ProcessError(f"node {node}: the {agent.vendor} plugin did not register in time")
        await asyncio.sleep(0.2)


# unix socket paths are limited to 107 bytes: node folders are short, under /tmp
NODE_FOLDERS = Path("/tmp")  # noqa: S108 - mkdtemp makes each one private and unique
NODE_FOLDER_PREFIX = "gpu-"


def node_folder(node: str) -> Path:
    """A new folder for a node's sockets and files (`NODE_FOLDERS`, named ``gpu-<node>-*``)."""
    return Path(tempfile.mkdtemp(prefix=f"{NODE_FOLDER_PREFIX}{node[:20]}-", dir=NODE_FOLDERS))


class GpuNode:
    """A fake node with its vendor's plugin (NVIDIA, Ascend or Cambricon: its devices say) and
    kubelet's stand-in in the test's event loop."""

    def __init__(
        self,
        cluster: _Cluster,
        node: str,
        *,
        split_count: int = 10,
        extra_args: tuple[str, ...] = (),
        device_config: dict[str, Any] | None = None,
        edit_spec: Callable[[dict[str, Any]], None] | None = None,
        watch_pods: bool = True,
        observe: bool = False,
    ) -> None:
        """``watch_pods=False``: kubelet's stand-in calls Allocate only when the test calls
        ``node.kubelet.admit(pod)``, not for every pod bound to the node. ``observe``: the
        node's monitor runs (`monitor_port`), and allocated containers run real work."""
        self.cluster = cluster
        self.watch_pods = watch_pods
        self.node = node
        self.split_count = split_count
        self.extra_args = extra_args
        self.device_config = device_config
        self.edit_spec = edit_spec
        self.root = node_folder(node)
        self.plugin_dir = self.root / "dp"
        self.spec_path = self.root / "spec.json"
        self.hook_path = self.root / "hook"
        self.client: KubeClient | None = None
        self.kubelet: DeviceManager
        self.plugin: ManagedProcess | None = None
        self.observe = observe
        self.containers: Containers | None = None
        self.monitor: ManagedProcess | None = None
        self.monitor_port: int | None = None

    async def __aenter__(self) -> GpuNode:
        self.client = self.cluster.client()
        node = await self.client.get(NODES, self.node)
        self.spec = spec_from_node(node)
        if self.edit_spec is not None:
            self.edit_spec(self.spec)  # links, injected failures...
        self.agent = agent_for(self.spec["devices"], self.split_count)
        self.write_spec()
        if self.observe:
            self.containers = Containers(self.root, self.cluster.logs)
            self.kubelet = DeviceManager(
                self.node, self.plugin_dir, self.client,
                on_allocation=on_allocation(self.containers), on_release=self.containers.stop_pod,
            )  # fmt: skip
            self.monitor_port = free_port()
            self.monitor = monitor_process(self.cluster, self.node, self.root, self.monitor_port)
            self.monitor.start()
        else:
            self.kubelet = DeviceManager(self.node, self.plugin_dir, self.client)
        await self.kubelet.start(watch_pods=self.watch_pods)
        self.start_plugin()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop_plugin()
        await self.kubelet.stop()
        if self.containers is not None:
            self.containers.stop()
        if self.monitor is not None:
            self.monitor.stop()
        if self.client is not None:
            await self.client.aclose()
        shutil.rmtree(self.root, ignore_errors=True)

    def write_spec(self) -> None:
        write_spec(self.root, self.spec)

    def set_health(self, index: int, healthy: bool) -> None:
        self.spec["devices"][index]["healthy"] = healthy
        self.write_spec()

    def start_plugin(self) -> None:
        config = self.device_config or (
            {"nvidia": {"deviceSplitCount": self.split_count}}
            if self.agent.vendor == "nvidia" else device_config(self.split_count)
        )  # fmt: skip
        self.plugin = plugin_process(self.cluster, self.node, self.root, config,
                                     self.extra_args, agent=self.agent)  # fmt: skip
        self.plugin.start()

    def stop_plugin(self) -> None:
        if self.plugin is not None:
            self.plugin.stop()
            self.plugin = None

    async def register_annotation(self) -> list[hami_rustcore.Device] | None:
        """The devices the plugin registered: its register annotation, or for Cambricon (which
        has none) what HAMi synthesizes from the node's sMLU capacity."""
        assert self.client is not None  # noqa: S101
        node = await self.client.get(NODES, self.node)
        if self.agent.register is None:
            capacity = (node.get("status") or {}).get("capacity") or {}
            vcore = int(capacity.get(CAMBRICON["resourceCoreName"], 0))
            vmemory = int(capacity.get(CAMBRICON["resourceMemoryName"], 0))
            return hami_rustcore.cambricon_devices(self.node, vcore, vmemory) or None
        value = (node["metadata"].get("annotations") or {}).get(self.agent.register)
        return hami_rustcore.decode_node_devices(value, self.agent.vendor) if value else None

    async def allocatable(self) -> tuple[int, int]:
        """Capacity and allocatable of the vendor's registered resource."""
        assert self.client is not None  # noqa: S101
        status = (await self.client.get(NODES, self.node)).get("status") or {}
        resource = self.agent.resource
        return (
            int((status.get("capacity") or {}).get(resource, 0)),
            int((status.get("allocatable") or {}).get(resource, 0)),
        )

    async def eventually(self, probe: Any, within: float = 30.0) -> Any:
        """Polls the async ``probe()`` until it returns a truthy value."""
        deadline = time.monotonic() + within
        while True:
            if self.plugin is not None:
                self.plugin.check()
            value = await probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {self.node}: condition not met in {within}s")
            await asyncio.sleep(0.1)

    async def wait_registered(self, within: float = 30.0) -> list[hami_rustcore.Device]:
        devices: list[hami_rustcore.Device] = await self.eventually(
            self.register_annotation, within
        )
        total = len(self.spec["devices"]) * self.agent.per_device
        await self.eventually(lambda: _eq(self.allocatable(), (total, total)), within)
        return devices


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
