"""The whole hami-rs control plane on the local cluster: the webhook and the extender as real
processes (the real kube-apiserver calls the webhook over TLS; the real kube-scheduler calls the
extender over TLS with its client certificate, both issued by the stack's own CA), for the demo
and the end-to-end suites. Both read the harness's device config (`hami_e2e.vendors`: NVIDIA,
Cambricon and HAMi's chart Ascend chips, enabled), and kube-scheduler leaves every vendor's
resources to the extender, as HAMi's chart configures it. Each exports its spans to the
cluster's Jaeger through the standard ``OTEL_*`` variables."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from hami_common.k8s import MUTATING_WEBHOOK_CONFIGURATIONS, KubeClient
from hami_extender.testing import extender_config

from hami_e2e.backend import Cluster, make_cluster
from hami_e2e.components import free_port
from hami_e2e.jaeger import otel_env
from hami_e2e.pki import CertificateAuthority, ServingPki, serving_pki
from hami_e2e.process import ManagedProcess, tail
from hami_e2e.vendors import managed_resources, write_device_config

Json = dict[str, Any]

# Namespaces whose pods the webhook sees carry this label.
WEBHOOK_NAMESPACE_LABEL = "hami-e2e"
# A scheduler name that no profile of the stack's kube-scheduler has: an extender started with
# ``--scheduler-name nobody`` places pods that only a test (acting as kube-scheduler) sends it.
MANUAL_SCHEDULER = "nobody"


class Service:
    """A Python service as a real process in its own session, with its own log (a
    `ManagedProcess`: stopped with the harness, unless ``detachable``)."""

    def __init__(
        self, name: str, argv: list[str], log: Path, ready_url: str,
        *, port: int | None = None, env: dict[str, str] | None = None, detachable: bool = False,
        metrics_port: int | None = None,
    ) -> None:  # fmt: skip
        self.name, self.argv, self.log, self.ready_url = name, argv, log, ready_url
        self.port = port
        self.metrics_port = metrics_port
        self.env = env or {}  # on top of ours
        self.process = ManagedProcess(name, argv, log, env={**os.environ, **self.env},
                                      die_with_parent=not detachable)  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process.running()

    def start(self) -> None:
        self.process.start()

    def wait_ready(self, within: float = 60.0, status: int = 200) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.process.running():
                raise RuntimeError(f"{self.name} exited: {tail(self.log, 60)}")
            with contextlib.suppress(httpx.HTTPError):
                # Readiness of a local server whose certificate our own test CA signed.
                reply = httpx.get(self.ready_url, verify=False, timeout=2)  # noqa: S501
                if reply.status_code == status:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {within}s: {tail(self.log, 60)}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """SIGTERM: a clean stop (the service flushes its last spans); SIGKILL: a crash."""
        if not self.process.running():
            return
        if sig == signal.SIGTERM:
            self.process.stop(timeout=15)
        else:
            assert self.process.pid is not None  # noqa: S101 - running
            os.killpg(self.process.pid, sig)
            self.process.stop(timeout=15)  # reaps it (and anything left in its group)

    def ready_status(self) -> int:
        try:
            # Readiness of a local server whose certificate our own test CA signed.
            return httpx.get(self.ready_url, verify=False, timeout=2).status_code  # noqa: S501
        except httpx.HTTPError:
            return 0


def extender_pki(workdir: Path) -> ServingPki:
    """The extender's serving certificate, and kube-scheduler's client certificate for it."""
    return serving_pki(workdir / "extender-pki", "extender", client_name="system:kube-scheduler")


class HamiStack:
    """A local cluster whose kube-scheduler calls our extender, plus our processes on it."""

    def __init__(
        self, cluster: Cluster, workdir: Path, extender_port: int, extender_tls: ServingPki,
        *, detachable: bool = False, dra: bool = False,
    ) -> None:  # fmt: skip
        """``detachable`` services outlive this process (`./just cluster-up`); ``dra``: the
        webhook turns NVIDIA requests into DRA claims (``--dra``)."""
        self.cluster = cluster
        self.dra = dra
        self.workdir = workdir
        self.extender_port = extender_port
        self.extender_tls = extender_tls
        self.detachable = detachable
        self.services: list[Service] = []
        self.extenders: list[Service] = []

    def extender(self, port: int | None = None, *extra: str, name: str = "extender") -> Service:
        """Start an extender on ``port`` (default: the one kube-scheduler calls), serving HTTPS
        with kube-scheduler's client certificate required on the verbs."""
        port = port or self.extender_port
        tls = self.extender_tls
        metrics_port = free_port()
        traces = ["--traces-url", self.cluster.traces_url] if self.cluster.traces_url else []
        argv = [sys.executable, "-m", "hami_extender", "--kubeconfig", str(self.cluster.kubeconfig),
                *self.vendor_args(),
                "--port", str(port), "--metrics-port", str(metrics_port), *traces,
                "--leader-elect", "--lease-namespace", "default",
                "--lease-duration-seconds", "4", "--identity", f"{name}-{port}",
                "--reservation-ttl-seconds", "60", "--cert-file", str(tls.server.cert),
                "--key-file", str(tls.server.key), "--client-ca-file", str(tls.ca_file),
                *extra]  # fmt: skip
        svc = Service(name, argv, self.workdir / f"{name}-{port}.log",
                      f"{self.extender_url(port)}/readyz", port=port,
                      env=self.otel_env("hami-extender"), detachable=self.detachable,
                      metrics_port=metrics_port)  # fmt: skip
        svc.start()
        self.services.append(svc)
        self.extenders.append(svc)
        return svc

    def extender_on(self, port: int | None = None) -> Service:
        """The extender last started on ``port`` (default: the one kube-scheduler calls)."""
        port = port or self.extender_port
        return next(s for s in reversed(self.extenders) if s.port == port)

    def extender_url(self, port: int | None = None) -> str:
        return f"https://127.0.0.1:{port or self.extender_port}"

    def extender_http(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client that trusts the extender's certificate and presents kube-scheduler's
        (the verbs need it; health, metrics and explanations do not)."""
        tls = self.extender_tls
        verify = ssl.create_default_context(cafile=str(tls.ca_file))
        verify.load_cert_chain(tls.client.cert, tls.client.key)
        return httpx.AsyncClient(verify=verify, **kwargs)

    def webhook(self) -> tuple[Service, int, bytes]:
        """Starts the webhook over TLS; returns it, its port and the CA that signed it."""
        ca = CertificateAuthority(self.workdir / "webhook-pki", name="hami-webhook-ca")
        pair = ca.issue("webhook", common_name="127.0.0.1", ips=("127.0.0.1",), server=True)
        port = free_port()
        svc = Service("webhook", [
            sys.executable, "-m", "hami_webhook", "--cert-file", str(pair.cert),
            "--key-file", str(pair.key), "--port", str(port), "--host", "127.0.0.1",
            "--kubeconfig", str(self.cluster.kubeconfig), *self.vendor_args(),
            *(["--dra"] if self.dra else []),
        ], self.workdir / "webhook.log", f"https://127.0.0.1:{port}/readyz", port=port,
           env=self.otel_env("hami-webhook"), detachable=self.detachable)  # fmt: skip
        svc.start()
        self.services.append(svc)
        return svc, port, ca.pem

    def vendor_args(self) -> list[str]:
        """The device config every vendor's pods are read with (HAMi's chart chips for Ascend,
        enabled as ``--enable-ascend`` does), for the webhook and the extender alike."""
        config = write_device_config(self.workdir / "device-config.json")
        return ["--device-config-file", str(config), "--enable-ascend"]

    def otel_env(self, service_name: str) -> dict[str, str]:
        """What makes a service export its spans to the cluster's Jaeger."""
        return otel_env(self.cluster.otlp_endpoint, service_name)

    def stop(self) -> None:
        for svc in self.services:
            svc.kill(signal.SIGTERM)  # waits: each flushes its last spans on the way out

    def client(self) -> KubeClient:
        return self.cluster.client()


def scheduler_extra(extender_port: int, tls: ServingPki) -> Json:
    """kube-scheduler with HAMi's profile calling the extender (HAMi's chart, §2.7) over HTTPS,
    with the client certificate the extender's --client-ca-file signed."""
    config = extender_config(
        f"https://127.0.0.1:{extender_port}", cert_file=tls.client.cert,
        key_file=tls.client.key, ca_file=tls.ca_file, managed=managed_resources(),
    )  # fmt: skip
    return {
        "profiles": [{"schedulerName": "default-scheduler"}, {"schedulerName": "hami-scheduler"}],
        "extenders": [config],
    }


# The test suites' selector: only namespaces a test labelled, so suites never see each other.
TEST_NAMESPACES: Json = {"matchLabels": {WEBHOOK_NAMESPACE_LABEL: "true"}}
# HAMi's chart: every namespace but those labelled hami.io/webhook=ignore (and kube-system).
ALL_NAMESPACES: Json = {"matchExpressions": [
    {"key": "hami.io/webhook", "operator": "NotIn", "values": ["ignore"]},
    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
]}  # fmt: skip


async def install_webhook(
    kube: KubeClient, port: int, ca_pem: bytes, namespace_selector: Json = TEST_NAMESPACES,
    side_effects: str = "None",
) -> None:  # fmt: skip
    """The MutatingWebhookConfiguration that sends pod CREATEs, and UPDATEs of
    ``pods/ephemeralcontainers`` (ephemeral containers added to a running pod), of the selected
    namespaces to us (webhook-svc/README.md, Registration)."""
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "hami-webhook"},
        "webhooks": [{
            "name": "vgpu.hami.io", "admissionReviewVersions": ["v1"], "sideEffects": side_effects,
            "failurePolicy": "Fail", "timeoutSeconds": 10,
            "clientConfig": {"url": f"https://127.0.0.1:{port}/webhook",
                             "caBundle": base64.b64encode(ca_pem).decode()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"], "scope": "Namespaced"},
                      {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"}],
            "namespaceSelector": namespace_selector,
        }],
    }  # fmt: skip
    await kube.create(MUTATING_WEBHOOK_CONFIGURATIONS, body)


def start_stack(
    workdir: Path, *, detachable: bool = False, namespace_selector: Json = TEST_NAMESPACES,
    dra: bool = False,
) -> HamiStack:  # fmt: skip
    """Starts the cluster (its kube-scheduler calling our extender), the webhook (registered
    for ``namespace_selector``) and one extender, each ready; stops what started if one fails.
    ``detachable``: everything outlives this process (`./just cluster-up`); ``dra``: the webhook
    runs with ``--dra`` (it creates claim templates, but none on a dry run)."""
    port = free_port()
    tls = extender_pki(workdir)
    cluster = make_cluster(workdir / "cluster", scheduler_extra=scheduler_extra(port, tls),
                           detachable=detachable)  # fmt: skip
    stack = HamiStack(cluster, workdir, port, tls, detachable=detachable, dra=dra)
    try:
        cluster.start()
        webhook, wport, ca_pem = stack.webhook()
        webhook.wait_ready()

        async def setup() -> None:
            async with cluster.client() as kube:
                await install_webhook(kube, wport, ca_pem, namespace_selector,
                                      side_effects="NoneOnDryRun" if dra else "None")  # fmt: skip

        asyncio.run(setup())
        stack.extender().wait_ready()
    except BaseException:
        stack.stop()
        cluster.stop()
        raise
    return stack


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[HamiStack]:
    """`start_stack` for the demo and the suites: stops everything on exit."""
    stack = start_stack(workdir)
    try:
        yield stack
    finally:
        stack.stop()
        stack.cluster.stop()
