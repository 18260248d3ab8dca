"""Which cluster the fixtures start: the local processes, or kind where it can run.

``HAMI_E2E_BACKEND`` selects: ``local`` (the default when kind or Docker is missing), ``kind``
(fails if unavailable) or ``auto`` (the default: kind when `kind_available()`, else local).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from hami_common.k8s import KubeClient

from hami_e2e.cluster import LocalCluster
from hami_e2e.kind import KindCluster, kind_available
from hami_e2e.process import ManagedProcess


class Cluster(Protocol):
    """What suites may rely on, whichever backend runs."""

    kind: str
    workdir: Path
    logs: Path
    kubeconfig: Path
    start_seconds: float | None
    processes: list[ManagedProcess]
    """The processes it started on this machine (all of them, for the local backend)."""

    @property
    def otlp_endpoint(self) -> str | None:
        """Jaeger's OTLP/HTTP endpoint, for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""

    @property
    def traces_url(self) -> str | None:
        """Jaeger's query API and UI."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def client(self, max_connections: int = 100) -> KubeClient: ...
    def check(self) -> None: ...
    def compact_storage(self) -> int: ...
    def log_tails(self, lines: int = 30) -> str: ...


def make_cluster(
    workdir: Path, scheduler_extra: dict[str, Any] | None = None, *, detachable: bool = False
) -> Cluster:
    """The backend ``HAMI_E2E_BACKEND`` selects; ``detachable`` (a cluster left running for
    people, `./just cluster-up`) is always the local one."""
    if detachable:
        return LocalCluster(workdir, scheduler_extra=scheduler_extra, detachable=True)
    choice = os.environ.get("HAMI_E2E_BACKEND", "auto")
    if choice not in ("auto", "local", "kind"):
        raise ValueError(f"HAMI_E2E_BACKEND={choice!r}: expected auto, local or kind")
    if choice == "kind" or (choice == "auto" and kind_available()):
        return KindCluster(workdir, scheduler_extra=scheduler_extra)
    return LocalCluster(workdir, scheduler_extra=scheduler_extra)
