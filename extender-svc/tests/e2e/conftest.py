"""The whole control plane of hami-rs on the real Kubernetes components.

`hami_stack` (session) starts its own local control plane whose kube-scheduler has the extender
configured as HAMi's chart does (§2.7: ``nodeCacheCapable``, filter and bind verbs, the device
resources ``ignoredByScheduler``), the webhook as a real process that the real kube-apiserver calls
over TLS, and the extender as a real process (so tests can kill it). Until the NVIDIA device
plugin lands, `FakePlugin` writes the node registration annotation and performs exactly the
plugin's steps after Allocate: blank the to-allocate entries, ``bind-phase=success``, release the
node lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hami_common.k8s import (
    MUTATING_WEBHOOK_CONFIGURATIONS,
    NAMESPACES,
    NODES,
    SERVICE_ACCOUNTS,
    KubeClient,
    NotFound,
)
from hami_e2e.backend import Cluster, make_cluster
from hami_e2e.components import free_port
from hami_e2e.nodes import NodePool, create_nodes, delete_nodes
from hami_e2e.pki import CertificateAuthority
from hami_extender.testing import REGISTER, extender_config, register_annotation

Json = dict[str, Any]


class Service:
    """A Python service as a real process with its own log."""

    def __init__(self, name: str, argv: list[str], log: Path, ready_url: str) -> None:
        self.name, self.argv, self.log, self.ready_url = name, argv, log, ready_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, within: float = 60.0, status: int = 200) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                # Readiness of a test server with a self-signed certificate.
                reply = httpx.get(self.ready_url, verify=False, timeout=2)  # noqa: S501
                if reply.status_code == status:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {within}s: {self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(15)

    def ready_status(self) -> int:
        try:
            return httpx.get(self.ready_url, timeout=2).status_code
        except httpx.HTTPError:
            return 0


class HamiStack:
    def __init__(self, cluster: Cluster, workdir: Path, extender_port: int) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.extender_port = extender_port
        self.extenders: list[Service] = []

    # -- processes ---------------------------------------------------------------------------

    def extender(self, port: int | None = None, *extra: str, name: str = "extender") -> Service:
        port = port or self.extender_port
        argv = [sys.executable, "-m", "hami_extender", "--kubeconfig", str(self.cluster.kubeconfig),
                "--port", str(port), "--leader-elect", "--lease-namespace", "default",
                "--lease-duration-seconds", "4", "--identity", f"{name}-{port}",
                "--reservation-ttl-seconds", "60", *extra]  # fmt: skip
        svc = Service(name, argv, self.workdir / f"{name}-{port}.log",
                      f"http://127.0.0.1:{port}/readyz")  # fmt: skip
        svc.start()
        self.extenders.append(svc)
        return svc

    def stop(self) -> None:
        for svc in self.extenders:
            svc.kill(signal.SIGTERM)

    def client(self) -> KubeClient:
        return self.cluster.client()


async def register_nodes(kube: KubeClient, pool: NodePool) -> list[str]:
    """Fake nodes, and what the device plugin does at start: the register annotation."""
    names = await create_nodes(kube, [pool])
    for node in names:
        value = register_annotation(pool.devices(node))
        await kube.patch(NODES, node, {"metadata": {"annotations": {REGISTER: value}}})
    return names


def _scheduler_extra(port: int) -> Json:
    return {
        "profiles": [{"schedulerName": "default-scheduler"}, {"schedulerName": "hami-scheduler"}],
        "extenders": [extender_config(f"http://127.0.0.1:{port}")],
    }  # fmt: skip


async def _install_webhook(kube: KubeClient, port: int, ca_pem: bytes) -> None:
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "hami-webhook"},
        "webhooks": [{
            "name": "vgpu.hami.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 10,
            "clientConfig": {"url": f"https://127.0.0.1:{port}/webhook",
                             "caBundle": base64.b64encode(ca_pem).decode()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {"hami-e2e": "true"}},
        }],
    }  # fmt: skip
    await kube.create(MUTATING_WEBHOOK_CONFIGURATIONS, body)


@pytest.fixture(scope="session")
def hami_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HamiStack]:
    workdir = tmp_path_factory.mktemp("hami-stack")
    port = free_port()
    cluster = make_cluster(workdir / "cluster", scheduler_extra=_scheduler_extra(port))
    stack = HamiStack(cluster, workdir, port)
    try:
        cluster.start()
        ca = CertificateAuthority(workdir / "webhook-pki", name="hami-webhook-ca")
        pair = ca.issue("webhook", common_name="127.0.0.1", ips=("127.0.0.1",), server=True)
        wport = free_port()
        webhook = Service("webhook", [
            sys.executable, "-m", "hami_webhook", "--cert-file", str(pair.cert),
            "--key-file", str(pair.key), "--port", str(wport), "--host", "127.0.0.1",
            "--kubeconfig", str(cluster.kubeconfig),
        ], workdir / "webhook.log", f"https://127.0.0.1:{wport}/readyz")  # fmt: skip
        webhook.start()
        stack.extenders.append(webhook)
        webhook.wait_ready()

        async def setup() -> None:
            async with cluster.client() as kube:
                await _install_webhook(kube, wport, ca.pem)

        asyncio.run(setup())
        stack.extender().wait_ready()
        yield stack
    finally:
        stack.stop()
        cluster.stop()


@pytest.fixture
def hami_ns(hami_stack: HamiStack, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace whose pods go through the webhook."""
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    name += "-" + os.urandom(2).hex()

    async def create() -> None:
        async with hami_stack.client() as kube:
            await kube.create(
                NAMESPACES, {"metadata": {"name": name, "labels": {"hami-e2e": "true"}}}
            )
            for _ in range(300):
                with contextlib.suppress(NotFound):
                    await kube.get(SERVICE_ACCOUNTS, "default", namespace=name)
                    return
                await asyncio.sleep(0.1)

    asyncio.run(create())
    yield name

    async def delete() -> None:
        async with hami_stack.client() as kube:
            with contextlib.suppress(NotFound):
                await kube.delete(NAMESPACES, name)

    asyncio.run(delete())


@pytest.fixture
def gpu_nodes(hami_stack: HamiStack) -> Iterator[Callable[[NodePool], list[str]]]:
    pools: list[NodePool] = []

    def make(pool: NodePool) -> list[str]:
        pools.append(pool)

        async def go() -> list[str]:
            async with hami_stack.client() as kube:
                return await register_nodes(kube, pool)

        return asyncio.run(go())

    yield make

    async def cleanup() -> None:
        async with hami_stack.client() as kube:
            for pool in pools:
                await delete_nodes(kube, pool)

    asyncio.run(cleanup())
