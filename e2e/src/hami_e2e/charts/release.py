"""The umbrella chart installed into the local control plane by the real helm, as the README's
"Install on a cluster" says, and each of its components run as a process from what the
release holds (`localpod.LocalPod`), under its own ServiceAccount's token.

Only what a local control plane needs is added to the install: the webhook is reached by URL
(the chart's ``admissionWebhook.customURL``: the API server has no pod network here) on a port
of 127.0.0.1, and only namespaces with a label of this run are sent to it (so other suites
sharing the cluster never meet it). kube-scheduler's extender URL points at the extender's
local port; the certificate is still checked against the Service's name (``serverName``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from hami_common.k8s import NODES, RESOURCE_SLICES, SECRETS, KubeClient

from hami_e2e.backend import Cluster
from hami_e2e.charts.helm import Helm, documents
from hami_e2e.charts.localpod import LocalPod, request_token, token_kubeconfig
from hami_e2e.charts.schemas import chart_root
from hami_e2e.components import free_port
from hami_e2e.kubelet.node import node_folder, spec_from_node, write_spec
from hami_e2e.nodes import DEVICES_ANNOTATION
from hami_e2e.process import ManagedProcess, ProcessError, tail
from hami_e2e.vendors import VendorAgent, agent_for

Json = dict[str, Any]
RELEASE = "hami"
NAMESPACE = "kube-system"


def merged(base: Json, extra: Json) -> Json:
    """``extra`` over ``base``, nested mappings merged (as helm merges ``-f`` files)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def local_values(webhook_port: int, label: str) -> Json:
    """What the install adds for a local control plane (see the module docstring)."""
    return {"scheduler": {"admissionWebhook": {
        "customURL": {"enabled": True, "host": "127.0.0.1", "port": webhook_port},
        "namespaceSelector": {"matchLabels": {"hami.io/chart-test": label}},
    }}}  # fmt: skip


@dataclass
class ChartStack:
    cluster: Cluster
    workdir: Path
    release: str = RELEASE
    namespace: str = NAMESPACE
    label: str = field(default_factory=lambda: secrets.token_hex(4))
    webhook_port: int = field(default_factory=free_port)
    extender_port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    hosts: dict[str, Path] = field(default_factory=dict)
    """Node -> the folder standing for its root (`start_node`)."""
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    kubeconfigs: dict[str, Path] = field(default_factory=dict)
    manifest: list[Json] = field(default_factory=list)
    chosen: Json = field(default_factory=dict)
    """The values of the install, given again to every upgrade (as ``helm upgrade -f``)."""

    def __post_init__(self) -> None:
        self.helm = Helm(self.workdir / "helm", self.cluster.kubeconfig)

    @property
    def chart(self) -> Path:
        return chart_root()

    def values(self, extra: Json | None = None) -> list[str]:
        """``-f`` arguments: the local additions, then ``extra``."""
        args = self.helm.value_args(local_values(self.webhook_port, self.label))
        return args + self.helm.value_args(extra)

    # -- helm ---------------------------------------------------------------------------------

    def install(self, extra: Json | None = None) -> str:
        self.chosen = dict(extra or {})
        out = self.helm.ok("install", self.release, str(self.chart), "--namespace",
                           self.namespace, *self.values(self.chosen))  # fmt: skip
        self.manifest = self.read_manifest()
        return out

    def upgrade(self, extra: Json | None = None) -> str:
        """``helm upgrade`` with the install's values and ``extra`` over them."""
        values = merged(self.chosen, extra or {})
        out = self.helm.ok("upgrade", self.release, str(self.chart), "--namespace",
                           self.namespace, *self.values(values))  # fmt: skip
        self.manifest = self.read_manifest()
        return out

    def uninstall(self) -> str:
        return self.helm.ok("uninstall", self.release, "--namespace", self.namespace, "--wait")

    def read_manifest(self) -> list[Json]:
        return documents(self.helm.ok("get", "manifest", self.release, "-n", self.namespace))

    # -- components ---------------------------------------------------------------------------

    def pod(self, kind: str, name: str, **kw: Any) -> LocalPod:
        return LocalPod(self.manifest, kind, name, self.workdir / "pods" / name, **kw)

    async def account(self, kube: KubeClient, name: str) -> Path:
        """A kubeconfig with a token of the release's ServiceAccount ``name``."""
        token = await request_token(kube, self.namespace, name)
        path = self.workdir / "accounts" / f"{name}.kubeconfig"
        self.kubeconfigs[name] = token_kubeconfig(
            self.cluster.kubeconfig, self.namespace, name, token, path)  # fmt: skip
        return path

    async def secrets(self, kube: KubeClient) -> dict[str, Json]:
        listed = await kube.list(SECRETS, namespace=self.namespace)
        return {s["metadata"]["name"]: s for s in listed["items"]}

    async def start_service(
        self, kube: KubeClient, name: str, *, container: str, port: int, ready: str
    ) -> ManagedProcess:  # fmt: skip
        """A Deployment's Python service, ready (``ready``: its readiness path)."""
        pod = self.pod("Deployment", name)
        pod.materialize(await self.secrets(kube))
        argv = pod.argv(container, port=port)
        argv.append(f"--kubeconfig={await self.account(kube, pod.service_account)}")
        proc = self._spawn(name, argv)
        await _wait_http(f"https://127.0.0.1:{port}{ready}", proc)
        return proc

    async def start_kube_scheduler(self, kube: KubeClient, name: str) -> ManagedProcess:
        """kube-scheduler with the release's configuration: its client to the API server is
        the ServiceAccount's kubeconfig, its extender URL the local extender's port."""
        pod = self.pod("Deployment", name)
        pod.materialize(await self.secrets(kube))
        argv = pod.argv("kube-scheduler")
        kubeconfig = await self.account(kube, pod.service_account)
        container = pod.container("kube-scheduler")
        _point_scheduler(argv, kubeconfig, f"https://127.0.0.1:{self.extender_port}",
                         lambda path: pod.local_path(container, path))  # fmt: skip
        secure = free_port()
        argv += [f"--secure-port={secure}", "--bind-address=127.0.0.1"]
        proc = self._spawn(name, argv)
        await _wait_http(f"https://127.0.0.1:{secure}/healthz", proc)
        return proc

    async def start_node(self, kube: KubeClient, node: str, plugin: str) -> Path:
        """A fake accelerator node: kubelet's device-manager stand-in, and the release's device
        plugin of its vendor (the DaemonSet ``plugin``: its command line, the fake backend
        reading the node's devices) under the plugin's ServiceAccount; returns the folder
        standing for the node's root."""
        host = self.hosts[node] = node_folder(node)
        spec = spec_from_node(await kube.get(NODES, node))
        write_spec(host, spec)
        pod = self.pod("DaemonSet", plugin, node=node, host_root=host)
        pod.materialize(await self.secrets(kube))
        argv = pod.argv("device-plugin")
        plugin_dir = _kubelet_folder(argv)
        kubelet = self._spawn(f"kubelet-{node}", [
            sys.executable, "-m", "hami_e2e.kubelet", "--kubeconfig",
            str(self.cluster.kubeconfig), "--node", node, "--plugin-dir", str(plugin_dir),
        ])  # fmt: skip
        deadline = time.monotonic() + 60
        while not (plugin_dir / "kubelet.sock").exists():
            kubelet.check()
            if time.monotonic() > deadline:
                raise ProcessError(f"the kubelet stand-in never served: {tail(kubelet.log)}")
            await asyncio.sleep(0.1)
        argv += [f"--kubeconfig={await self.account(kube, pod.service_account)}",
                 "--backend=fake", f"--fake-spec={host / 'spec.json'}"]  # fmt: skip
        proc = self._spawn(f"{plugin}-{node}", argv)
        await _wait_registered(kube, node, agent_for(spec["devices"]), proc)
        return host

    async def start_dra_node(self, kube: KubeClient, node: str, plugin: str) -> Path:
        """A fake GPU node on the DRA path: the release's plugin DaemonSet ``plugin`` (run as
        the DRA driver with ``global.dra.enabled``: its command line, the fake backend reading
        the node's devices) under the plugin's ServiceAccount, and kubelet's DRA manager
        stand-in (``python -m hami_e2e.kubelet --dra``) on the registry folder it mounts;
        returns the folder standing for the node's root once its ResourceSlice is published."""
        host = self.hosts[node] = node_folder(node)
        write_spec(host, spec_from_node(await kube.get(NODES, node)))
        pod = self.pod("DaemonSet", plugin, node=node, host_root=host)
        pod.materialize(await self.secrets(kube))
        argv = pod.argv("device-plugin")
        registry = _flag(argv, "--dra-registry-dir")
        registry.mkdir(parents=True, exist_ok=True)  # kubelet's (hostPath Directory)
        argv += [f"--kubeconfig={await self.account(kube, pod.service_account)}",
                 "--backend=fake", f"--fake-spec={host / 'spec.json'}"]  # fmt: skip
        proc = self._spawn(f"{plugin}-{node}", argv)
        self._spawn(f"kubelet-{node}", [
            sys.executable, "-m", "hami_e2e.kubelet", "--kubeconfig",
            str(self.cluster.kubeconfig), "--dra", "--node", node, "--plugin-dir", str(registry),
        ])  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            for started in self.processes.values():
                started.check()
            listed = await kube.list(RESOURCE_SLICES)
            if any((s.get("spec") or {}).get("nodeName") == node for s in listed["items"]):
                return host
            if time.monotonic() > deadline:
                raise ProcessError(f"node {node}: no ResourceSlice published:\n{tail(proc.log)}")
            await asyncio.sleep(0.2)

    async def start_monitor(
        self, kube: KubeClient, name: str, node: str, *extra: str
    ) -> ManagedProcess:  # fmt: skip
        """The release's node monitor (the DaemonSet ``name``) of a node `start_node` started,
        under its ServiceAccount, on ``monitor_port`` with the chart's certificate; ``extra``
        flags after the chart's (the tests' device source and periods)."""
        pod = self.pod("DaemonSet", name, node=node, host_root=self.hosts[node])
        pod.materialize(await self.secrets(kube))
        argv = pod.argv("monitor", port=self.monitor_port)
        argv += [f"--kubeconfig={await self.account(kube, pod.service_account)}", *extra]
        proc = self._spawn(f"{name}-{node}", argv)
        await _wait_http(f"https://127.0.0.1:{self.monitor_port}/readyz", proc)
        return proc

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log")
        proc.start()
        self.processes[name] = proc
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{tail(p.log, 30)}" for name, p in self.processes.items())

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            with contextlib.suppress(Exception):
                proc.stop()
        for host in self.hosts.values():
            shutil.rmtree(host, ignore_errors=True)


def _flag(argv: list[str], flag: str) -> Path:
    return Path(next(a.split("=", 1)[1] for a in argv if a.startswith(f"{flag}=")))


def _point_scheduler(
    argv: list[str], kubeconfig: Path, extender_url: str, local: Callable[[str], str]
) -> None:
    """kube-scheduler's configuration file (``--config``): its client and extender URL set,
    and the container paths it names (the extender's TLS files) mapped by ``local``."""
    path = _flag(argv, "--config")
    config = yaml.safe_load(path.read_text())
    config["clientConnection"] = {"kubeconfig": str(kubeconfig)}
    for extender in config["extenders"]:
        extender["urlPrefix"] = extender_url
        tls = extender.get("tlsConfig") or {}
        for key in ("certFile", "keyFile", "caFile"):
            if key in tls:
                tls[key] = local(tls[key])
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _kubelet_folder(argv: list[str]) -> Path:
    """The plugin's ``--plugin-dir`` on the node, made as kubelet has it (hostPath Directory)."""
    folder = _flag(argv, "--plugin-dir")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _wait_http(url: str, proc: ManagedProcess, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(verify=False, timeout=2) as http:  # noqa: S501 - local probe
        while True:
            proc.check()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ProcessError(f"{proc.name}: {url} not ready in {within}s:\n{tail(proc.log)}")
            await asyncio.sleep(0.2)


async def _wait_registered(
    kube: KubeClient, node: str, agent: VendorAgent, proc: ManagedProcess
) -> None:  # fmt: skip
    """Until the plugin registered the node (its vendor's annotation, where it has one) and
    kubelet's stand-in published all of its devices."""
    deadline = time.monotonic() + 60
    while True:
        proc.check()
        obj = await kube.get(NODES, node)
        annotations = obj["metadata"].get("annotations") or {}
        allocatable = (obj.get("status") or {}).get("allocatable") or {}
        devices = len(json.loads(annotations.get(DEVICES_ANNOTATION, "[]")))
        registered = agent.register is None or agent.register in annotations
        if (
            registered
            and devices
            and (allocatable.get(agent.resource) == str(devices * agent.per_device))
        ):
            return
        if time.monotonic() > deadline:
            raise ProcessError(f"node {node}: the plugin did not register:\n{tail(proc.log)}")
        await asyncio.sleep(0.2)
