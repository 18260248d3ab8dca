"""The DRA path on fake nodes: the NVIDIA driver (``--dra``, fake backend on the node's
inventory) as a process per node, its DeviceClass, claim templates with capacity requests, and
pods that use them. Shared by the DRA suite and ``./just bench-dra``.

kube-scheduler's DynamicResources plugin (in the default profile of 1.36, with consumable
capacity on by default) allocates the claims; the resourceclaim controller of
kube-controller-manager makes the claims of templates. No gate is needed on 1.36.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hami_common.k8s import (
    DEVICE_CLASSES,
    MUTATING_WEBHOOK_CONFIGURATIONS,
    NODES,
    PODS,
    RESOURCE_SLICES,
    AlreadyExists,
    KubeClient,
)

from hami_e2e.components import free_port
from hami_e2e.jaeger import otel_env
from hami_e2e.kubelet.dra import DraManager
from hami_e2e.kubelet.node import (
    NodeAgents,
    _Cluster,
    kubelet_process,
    node_folder,
    plugin_process,
    spec_from_node,
    write_spec,
)
from hami_e2e.pki import CertificateAuthority
from hami_e2e.process import ManagedProcess, ProcessError
from hami_e2e.stack import Service

Json = dict[str, Any]
DRIVER = "gpu.hami.io"
DEVICE_CLASS = "gpu.hami.io"
PAUSE = "registry.k8s.io/pause:3.10"


def device_class(name: str = DEVICE_CLASS, driver: str = DRIVER) -> Json:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{driver}"'}}]},
    }


async def ensure_device_class(kube: KubeClient) -> None:
    with contextlib.suppress(AlreadyExists):
        await kube.create(DEVICE_CLASSES, device_class())


def claim_template(name: str, *, memory: str | None = None, cores: str | None = None,
                   count: int = 1) -> Json:  # fmt: skip
    """A ResourceClaimTemplate of ``count`` GPUs; with ``memory``/``cores``, a share of each
    (consumable capacity), else whole devices."""
    exactly: Json = {"deviceClassName": DEVICE_CLASS, "count": count}
    requests = {k: v for k, v in (("memory", memory), ("cores", cores)) if v is not None}
    if requests:
        exactly["capacity"] = {"requests": requests}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": exactly}]}}},
    }


def claim_pod(name: str, template: str, node_selector: dict[str, str] | None = None) -> Json:
    """A pod with one container using one claim made from ``template``."""
    spec: Json = {
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
        "containers": [
            {"name": "main", "image": PAUSE, "resources": {"claims": [{"name": "gpu"}]}}
        ],
        "terminationGracePeriodSeconds": 0,
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@dataclass
class DraNode:
    name: str
    root: Path
    process: ManagedProcess
    manager: DraManager | None = None

    @property
    def cdi_dir(self) -> Path:
        return self.root / "cdi"


@dataclass
class DraDrivers:
    """The driver of each node, as a process of its own."""

    nodes: dict[str, DraNode] = field(default_factory=dict)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.process.stop()
            shutil.rmtree(node.root, ignore_errors=True)


async def start_drivers(
    cluster: _Cluster, kube: KubeClient, nodes: list[str], *, split_count: int = 10,
    within: float = 60.0, detachable: bool = False,
) -> DraDrivers:  # fmt: skip
    """Starts the DRA driver of each existing fake node and waits for every node's
    ResourceSlice; on failure stops what it started. ``detachable``: the drivers outlive this
    process (`./just cluster-up --dra`)."""
    drivers = DraDrivers()
    try:
        for node in nodes:
            root = node_folder(node)
            write_spec(root, spec_from_node(await kube.get(NODES, node)))
            args = (
                "--dra", "--dra-plugins-dir", str(root / "plugins"),
                "--dra-registry-dir", str(root / "reg"), "--cdi-dir", str(root / "cdi"),
            )  # fmt: skip
            proc = plugin_process(cluster, node, root,
                                  {"nvidia": {"deviceSplitCount": split_count}}, args,
                                  detachable=detachable)  # fmt: skip
            drivers.nodes[node] = DraNode(node, root, proc)
            proc.start()
        deadline = time.monotonic() + within
        while True:
            for d in drivers.nodes.values():
                d.process.check()
            listed = await kube.list(RESOURCE_SLICES)
            have = {(s.get("spec") or {}).get("nodeName") for s in listed.get("items") or []}
            if set(nodes) <= have:
                break
            if time.monotonic() > deadline:
                raise ProcessError(f"no ResourceSlice for {sorted(set(nodes) - have)} in time")
            await asyncio.sleep(0.2)
    except BaseException:
        drivers.stop()
        raise
    return drivers


async def start_dra_agents(
    cluster: _Cluster, kube: KubeClient, nodes: list[str], *, split_count: int = 10,
    detachable: bool = False,
) -> NodeAgents:  # fmt: skip
    """What runs on DRA nodes as on real ones: the DeviceClass, each node's DRA driver (each
    node's ResourceSlice published) and kubelet's DRA manager for all of them
    (``python -m hami_e2e.kubelet --dra``), each a process of its own; on failure stops what it
    started."""
    await ensure_device_class(kube)
    drivers = await start_drivers(cluster, kube, nodes, split_count=split_count,
                                  detachable=detachable)  # fmt: skip
    agents = NodeAgents(list(nodes), [d.process for d in drivers.nodes.values()],
                        [d.root for d in drivers.nodes.values()])  # fmt: skip
    try:
        kubelet = kubelet_process(cluster, [(d.name, d.root) for d in drivers.nodes.values()],
                                  detachable=detachable, dra=True)  # fmt: skip
        kubelet.start()
        agents.processes.append(kubelet)
        kubelet.check()
    except BaseException:
        agents.stop()
        raise
    return agents


DRA_WEBHOOK = "hami-webhook-dra"


def start_dra_webhook(cluster: _Cluster, folder: Path) -> tuple[Service, int, bytes]:
    """The real webhook with ``--dra``, over TLS on loopback; returns it (ready), its port and
    the CA that signed its certificate."""
    ca = CertificateAuthority(folder / "webhook-pki", name="hami-webhook-ca")
    pair = ca.issue("webhook", common_name="127.0.0.1", ips=("127.0.0.1",), server=True)
    port = free_port()
    svc = Service("webhook-dra", [
        sys.executable, "-m", "hami_webhook", "--cert-file", str(pair.cert),
        "--key-file", str(pair.key), "--port", str(port), "--host", "127.0.0.1",
        "--kubeconfig", str(cluster.kubeconfig), "--dra",
    ], cluster.logs / "webhook-dra.log", f"https://127.0.0.1:{port}/readyz", port=port,
       env=otel_env(cluster.otlp_endpoint, "hami-webhook"))  # fmt: skip
    svc.start()
    try:
        svc.wait_ready()
    except BaseException:
        svc.kill()
        raise
    return svc, port, ca.pem


async def install_dra_webhook(kube: KubeClient, port: int, ca_pem: bytes, label: str) -> None:
    """Sends pod CREATEs of namespaces labelled ``label=true`` to the webhook. It creates claim
    templates, so it declares ``NoneOnDryRun`` (it writes nothing on a dry run)."""
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": DRA_WEBHOOK},
        "webhooks": [{
            "name": "dra.vgpu.hami.io", "admissionReviewVersions": ["v1"],
            "sideEffects": "NoneOnDryRun", "failurePolicy": "Fail", "timeoutSeconds": 10,
            "clientConfig": {"url": f"https://127.0.0.1:{port}/webhook",
                             "caBundle": base64.b64encode(ca_pem).decode()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {label: "true"}},
        }],
    }  # fmt: skip
    await kube.create(MUTATING_WEBHOOK_CONFIGURATIONS, body)


async def wait_dra_webhook(kube: KubeClient, namespace: str, within: float = 30.0) -> None:
    """Waits until the API server calls the DRA webhook for ``namespace`` (it picks up a new
    registration asynchronously): a dry-run create of a GPU pod comes back converted."""
    gpu = {"name": "c", "image": PAUSE, "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    probe = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dra-webhook-probe"},
             "spec": {"containers": [gpu]}}  # fmt: skip
    path = PODS.path(namespace)
    deadline = time.monotonic() + within
    while True:
        answer = await kube.request("POST", path, params={"dryRun": "All"}, body=probe)
        if (answer.get("spec") or {}).get("resourceClaims"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the DRA webhook is not called for {namespace} after {within}s")
        await asyncio.sleep(0.2)
