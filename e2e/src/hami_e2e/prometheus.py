"""A real Prometheus (Debian's ``prometheus`` package) scraping the local stack: the extender's
metrics port (HTTPS, the stack's CA) and every node monitor (plain HTTP on loopback), each
second, so the dashboard's queries can be evaluated against it.

Targets are files (``file_sd_configs``) that Prometheus re-reads when they change: monitors
that start after Prometheus are added with `add_targets`.

    prom = PrometheusServer.create(workdir, extender=("127.0.0.1:9395", ca_file))
    process = prom.process(logs)  # a ManagedProcess; start it, then prom.wait_ready()
    prom.add_targets("hami-monitor", ["127.0.0.1:9394"], {"node": "gpu-0"})
    samples = PrometheusQuery(prom.url).query("hami_vgpu_memory_used_bytes")
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from hami_e2e.components import free_port
from hami_e2e.process import ManagedProcess

SCRAPE_SECONDS = 1
JOBS = ("hami-extender", "hami-monitor")


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or answered a query with an error."""


def find_binary() -> Path:
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusError(
            "Debian's prometheus is needed: run e2e/scripts/debian_tools.sh (as root; "
            "./just test-e2e and ./just cluster-up do), or apt-get install prometheus"
        )
    return Path(found)


@dataclass(frozen=True)
class PrometheusServer:
    binary: Path
    workdir: Path
    port: int

    @classmethod
    def create(cls, workdir: Path, *, extender: tuple[str, Path] | None = None) -> PrometheusServer:
        """The configuration in ``workdir``; ``extender``: its metrics address and the CA of
        its certificate."""
        server = cls(find_binary(), workdir, free_port())
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "data").mkdir(exist_ok=True)
        for job in JOBS:
            target_file = server.targets_file(job)
            if not target_file.exists():
                target_file.write_text("[]\n")
        server.config.write_text(yaml.safe_dump(server.config_doc(extender), sort_keys=False))
        if extender is not None:
            server.add_targets("hami-extender", [extender[0]])
        return server

    @property
    def config(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def targets_file(self, job: str) -> Path:
        return self.workdir / f"targets-{job}.json"

    def config_doc(self, extender: tuple[str, Path] | None) -> dict[str, Any]:
        monitor = {"job_name": "hami-monitor",
                   "file_sd_configs": [{"files": [str(self.targets_file("hami-monitor"))],
                                        "refresh_interval": "5s"}]}  # fmt: skip
        jobs: list[dict[str, Any]] = [monitor]
        if extender is not None:
            jobs.insert(0, {
                "job_name": "hami-extender", "scheme": "https",
                "tls_config": {"ca_file": str(extender[1])},
                "file_sd_configs": [{"files": [str(self.targets_file("hami-extender"))],
                                     "refresh_interval": "5s"}],
            })  # fmt: skip
        return {
            "global": {"scrape_interval": f"{SCRAPE_SECONDS}s",
                       "evaluation_interval": f"{SCRAPE_SECONDS}s"},
            "scrape_configs": jobs,
        }  # fmt: skip

    def add_targets(
        self, job: str, targets: list[str], labels: dict[str, str] | None = None
    ) -> None:
        """Add scrape targets to a job (written whole, then renamed: never half read)."""
        path = self.targets_file(job)
        groups = json.loads(path.read_text()) if path.exists() else []
        groups.append({"targets": targets, "labels": labels or {}})
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(groups, indent=1) + "\n")
        staged.replace(path)

    def argv(self) -> list[str]:
        return [
            str(self.binary), f"--config.file={self.config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]  # fmt: skip

    def process(self, logs: Path, *, detachable: bool = False) -> ManagedProcess:
        return ManagedProcess("prometheus", self.argv(), logs / "prometheus.log",
                              die_with_parent=not detachable)  # fmt: skip

    def wait_ready(self, process: ManagedProcess, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while True:
            process.check()
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise PrometheusError(f"Prometheus not ready in {within:.0f}s: {process.log}")
            time.sleep(0.2)


class PrometheusQuery:
    """Prometheus' HTTP API: instant queries and the targets' health."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            reply = httpx.get(f"{self.base}{path}", params=params, timeout=10)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"{self.base}{path}: {exc}") from None
        doc = reply.json()
        if reply.status_code != 200 or doc.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {reply.status_code} {doc.get('error', doc)}")
        return doc["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query's samples (labels, value); NaN values are left out (no data)."""
        data = self._get("/api/v1/query", {"query": expr})
        out = []
        for r in data.get("result") or []:
            value = float(r["value"][1])
            if not math.isnan(value):
                out.append((r.get("metric") or {}, value))
        return out

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets").get("activeTargets") or [])

    def wait_up(self, targets: int, within: float = 60.0) -> None:
        """Wait until that many targets have been scraped successfully (so what happens next
        is seen as a change, and rates have a sample from before it)."""
        deadline = time.monotonic() + within
        while True:
            active = self.targets()
            if sum(t.get("health") == "up" for t in active) >= targets:
                return
            if time.monotonic() > deadline:
                states = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in active]
                raise PrometheusError(f"{targets} targets not up in {within:.0f}s: {states}")
            time.sleep(0.2)

    def wait(self, expr: str, within: float = 60.0) -> list[tuple[dict[str, str], float]]:
        """Poll until the query returns data."""
        deadline = time.monotonic() + within
        while True:
            found = self.query(expr)
            if found:
                return found
            if time.monotonic() > deadline:
                raise PrometheusError(f"no data for {expr!r} in {within:.0f}s")
            time.sleep(0.5)


class _Stack(Protocol):
    workdir: Path
    extender_tls: Any

    @property
    def cluster(self) -> Any: ...

    def extender_on(self, port: int | None = None) -> Any: ...


def start_for_stack(
    stack: _Stack, monitors: dict[str, int], *, detachable: bool = False
) -> tuple[PrometheusServer, ManagedProcess]:
    """Prometheus scraping the stack's extender (its metrics port, over TLS) and the given
    node monitors (node -> port), started and ready."""
    extender = stack.extender_on()
    server = PrometheusServer.create(
        stack.workdir / "prometheus",
        extender=(f"127.0.0.1:{extender.metrics_port}", stack.extender_tls.ca_file),
    )
    for port in monitors.values():
        server.add_targets("hami-monitor", [f"127.0.0.1:{port}"])
    process = server.process(stack.cluster.logs, detachable=detachable)
    process.start()
    try:
        server.wait_ready(process)
        PrometheusQuery(server.url).wait_up(1 + len(monitors))
    except BaseException:
        process.stop()
        raise
    return server, process
