"""The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok,
and the trace store Jaeger.

`LocalCluster` starts the upstream binaries from the build cache as processes on loopback,
with generated certificates, waits until each is ready, and writes an admin kubeconfig. Jaeger
receives OTLP at `jaeger.otlp_endpoint` (services started on this cluster get it as
``OTEL_EXPORTER_OTLP_ENDPOINT``) and serves its query API and UI at `jaeger.query_url`. Every
component logs into ``<workdir>/logs``; when one fails to start or dies, the error names it
and shows the tail of its log. `stop()` (also run by `with`) stops all of them, newest first.
`ClusterProcesses` is what it shares with the kind backend (`hami_e2e.kind`): the processes
started here, their checks and log tails, Jaeger's addresses and the admin client.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx
from hami_common.k8s import KubeClient, NotFound, load_config
from hami_common.k8s.resources import SERVICE_ACCOUNTS

from hami_e2e import components as comp
from hami_e2e.build import JaegerLayout, Layout, jaeger_layout, layout
from hami_e2e.jaeger import JaegerServer
from hami_e2e.pki import ClusterPki, cluster_pki
from hami_e2e.process import ManagedProcess, ProcessError, tail

READY_TIMEOUT = 90.0


class ClusterError(RuntimeError):
    """The cluster could not start; the message names the component and shows its log."""


class ClusterProcesses(ABC):
    """What both backends share: the processes started on this machine (stopped newest first),
    the trace store beside them, and the admin kubeconfig. Subclasses start them."""

    kubeconfig: Path
    processes: list[ManagedProcess]
    jaeger: JaegerServer | None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> None:
        """Starts every process (each backend its own way)."""

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    @property
    def otlp_endpoint(self) -> str | None:
        """Where services export their spans (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return self.jaeger.otlp_endpoint if self.jaeger else None

    @property
    def traces_url(self) -> str | None:
        """Jaeger's query API and UI."""
        return self.jaeger.query_url if self.jaeger else None

    def client(self, max_connections: int = 100) -> KubeClient:
        """A new adapter client as the cluster admin (close it, or use `async with`)."""
        return KubeClient(load_config(self.kubeconfig), max_connections=max_connections)

    def check(self) -> None:
        """Raise `ClusterError` with the log tail if any process has died."""
        for proc in self.processes:
            _check(proc)

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of every process's log, for a failure report."""
        return "\n".join(
            f"----- {p.name} ({p.log}) -----\n{tail(p.log, lines)}" for p in self.processes
        )

    def _wait(
        self, proc: ManagedProcess, ready: Callable[[], bool], timeout: float = READY_TIMEOUT
    ) -> None:
        """Until ``ready()``; `ClusterError` with the log tail when ``proc`` dies first or the
        time is up."""
        deadline = time.monotonic() + timeout
        while True:
            _check(proc)
            if ready():
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{proc.name} was not ready after {timeout:.0f}s; "
                    f"last lines of {proc.log}:\n{tail(proc.log)}"
                )
            time.sleep(0.2)


def _check(proc: ManagedProcess) -> None:
    try:
        proc.check()
    except ProcessError as exc:
        raise ClusterError(str(exc)) from None


class LocalCluster(ClusterProcesses):
    """A control plane in ``workdir``. Use as a context manager, or `start()` / `stop()`."""

    kind = "local"

    def __init__(
        self,
        workdir: Path,
        *,
        binaries: Layout | None = None,
        jaeger_binary: JaegerLayout | None = None,
        scheduler_extra: dict[str, Any] | None = None,
        controller_manager_extra: tuple[str, ...] = (),
        detachable: bool = False,
    ) -> None:
        """``detachable`` components survive this process (for `cluster-up`); otherwise the
        kernel kills them if it dies without cleaning up (they must be started from a thread
        that lives as long as the cluster, e.g. the main thread)."""
        self.workdir = workdir
        self.detachable = detachable
        self.logs = workdir / "logs"
        self.binaries = binaries or layout()
        self.jaeger_binary = jaeger_binary or jaeger_layout()
        self.jaeger: JaegerServer | None = None
        self.scheduler_extra = scheduler_extra
        self.controller_manager_extra = controller_manager_extra
        self.ports = comp.Ports.pick()
        self.processes: list[ManagedProcess] = []
        self.pki: ClusterPki | None = None
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.server = f"https://127.0.0.1:{self.ports.apiserver}"
        self.start_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if not self.binaries.is_complete():
            raise ClusterError(
                f"the control-plane binaries are not built at {self.binaries.bin}: "
                "run `./just build-cluster`"
            )
        if not self.jaeger_binary.is_complete():
            raise ClusterError(
                f"the trace store is not built at {self.jaeger_binary.binary}: "
                "run `./just build-cluster`"
            )
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        pki = self.pki = cluster_pki(self.workdir / "pki", comp.SERVICE_IP)
        ca, bins, ports = pki.ca.pair.cert, self.binaries, self.ports
        comp.write_kubeconfig(self.kubeconfig, self.server, ca, pki.admin)
        kcm_kc = comp.write_kubeconfig(
            self.workdir / "kcm.kubeconfig", self.server, ca, pki.controller_manager
        )
        sched_kc = comp.write_kubeconfig(
            self.workdir / "scheduler.kubeconfig", self.server, ca, pki.scheduler
        )
        kwok_kc = comp.write_kubeconfig(self.workdir / "kwok.kubeconfig", self.server, ca, pki.kwok)
        sched_cfg = comp.write_yaml(
            self.workdir / "scheduler-config.yaml",
            comp.scheduler_config(sched_kc, self.scheduler_extra),
        )

        jaeger = self.jaeger = JaegerServer.create(self.jaeger_binary.binary, self.workdir)
        jaeger_proc = self._spawn("jaeger", jaeger.argv())
        etcd = self._spawn(
            "etcd", comp.etcd_args(bins.binary("etcd"), self.workdir / "etcd", ports)
        )
        self._wait(etcd, lambda: _http_ok(f"http://127.0.0.1:{ports.etcd_client}/health"))
        apiserver = self._spawn(
            "kube-apiserver", comp.apiserver_args(bins.binary("kube-apiserver"), pki, ports)
        )
        self._wait(apiserver, lambda: self._api_ok("/readyz"))
        kcm = self._spawn(
            "kube-controller-manager",
            comp.controller_manager_args(
                bins.binary("kube-controller-manager"),
                pki,
                kcm_kc,
                ports,
                self.controller_manager_extra,
            ),
        )
        sched = self._spawn(
            "kube-scheduler",
            comp.scheduler_args(bins.binary("kube-scheduler"), sched_cfg, sched_kc, ports),
        )
        kwok = self._spawn("kwok", comp.kwok_args(bins.binary("kwok"), kwok_kc, bins.stages, ports))
        self._wait(kcm, lambda: _https_ok(f"https://127.0.0.1:{ports.controller_manager}/healthz"))
        self._wait(sched, lambda: _https_ok(f"https://127.0.0.1:{ports.scheduler}/healthz"))
        self._wait(kwok, lambda: _http_ok(f"http://127.0.0.1:{ports.kwok}/healthz"))
        self._wait(jaeger_proc, jaeger.ready)
        # The ServiceAccount admission plugin rejects pods until the controller-manager has
        # created the namespace's `default` ServiceAccount: wait for it.
        self._wait(kcm, self._default_service_account_exists)

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(
            name, argv, self.logs / f"{name}.log", die_with_parent=not self.detachable
        )
        proc.start()
        self.processes.append(proc)
        return proc

    def _api_ok(self, path: str) -> bool:
        if self.pki is None:
            return False
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.pair.cert))
        ctx.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return _http_ok(self.server + path, verify=ctx)

    def _default_service_account_exists(self) -> bool:
        async def probe() -> bool:
            async with self.client() as kube:
                try:
                    await kube.get(SERVICE_ACCOUNTS, "default", namespace="default")
                except NotFound:
                    return False
                return True

        return asyncio.run(probe())

    def compact_storage(self) -> int:
        """Compact etcd up to its current revision (what the API server does every 5 minutes),
        so older resourceVersions expire now. Returns that revision."""
        base = f"http://127.0.0.1:{self.ports.etcd_client}/v3/kv"
        try:
            head = httpx.post(f"{base}/range", json={"key": "AA=="}, timeout=10).json()
            revision = int(head["header"]["revision"])
            httpx.post(
                f"{base}/compaction", json={"revision": str(revision), "physical": True}, timeout=30
            ).raise_for_status()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise ClusterError(f"etcd compaction failed: {exc}") from None
        return revision

    def process_groups(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes if p.pid is not None}


def _http_ok(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    try:
        return httpx.get(url, verify=verify, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _https_ok(url: str) -> bool:
    # The components' health endpoints use a self-signed certificate they generate at start.
    return _http_ok(url, verify=False)
