"""The same cluster on kind, where `kind` and a Docker engine exist.

kind runs the real control plane in a container; fake accelerator nodes still come from our
kwok binary, run here as a process against kind's API server (kwok works out of cluster), so
node pools, fixtures and suites are unchanged. Our KubeSchedulerConfiguration is mounted into
the control-plane container and passed to kube-scheduler with a kubeadm patch. This path is
not exercised on machines without Docker (see e2e/README.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from hami_e2e import components as comp
from hami_e2e.build import JaegerLayout, Layout, jaeger_layout, layout
from hami_e2e.cluster import ClusterProcesses
from hami_e2e.jaeger import JaegerServer
from hami_e2e.process import ManagedProcess, tail

SCHEDULER_CONFIG_IN_NODE = "/etc/hami/scheduler-config.yaml"


def kind_available() -> bool:
    """`kind` on PATH and a Docker engine that answers."""
    if shutil.which("kind") is None or shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    return probe.returncode == 0


class KindCluster(ClusterProcesses):
    kind = "kind"

    def __init__(
        self,
        workdir: Path,
        *,
        binaries: Layout | None = None,
        jaeger_binary: JaegerLayout | None = None,
        scheduler_extra: dict[str, Any] | None = None,
        name: str = "hami-e2e",
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.binaries = binaries or layout()
        self.jaeger_binary = jaeger_binary or jaeger_layout()
        self.jaeger: JaegerServer | None = None
        self.scheduler_extra = scheduler_extra
        self.name = f"{name}-{int(time.time()) % 100000}"
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.processes: list[ManagedProcess] = []
        self.start_seconds: float | None = None
        self._created = False

    def _config(self) -> dict[str, Any]:
        sched = comp.scheduler_config(Path("/etc/kubernetes/scheduler.conf"), self.scheduler_extra)
        sched_file = comp.write_yaml(self.workdir / "scheduler-config.yaml", sched)
        patch = (
            "kind: ClusterConfiguration\n"
            "scheduler:\n"
            "  extraArgs:\n"
            f"    config: {SCHEDULER_CONFIG_IN_NODE}\n"
            "  extraVolumes:\n"
            "  - name: hami-scheduler-config\n"
            f"    hostPath: {SCHEDULER_CONFIG_IN_NODE}\n"
            f"    mountPath: {SCHEDULER_CONFIG_IN_NODE}\n"
            "    readOnly: true\n"
            "    pathType: File\n"
        )
        return {
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "nodes": [
                {
                    "role": "control-plane",
                    "extraMounts": [
                        {"hostPath": str(sched_file), "containerPath": SCHEDULER_CONFIG_IN_NODE}
                    ],
                    "kubeadmConfigPatches": [patch],
                }
            ],
        }

    def start(self) -> None:
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        config = comp.write_yaml(self.workdir / "kind.yaml", self._config())
        log = self.logs / "kind-create.log"
        with log.open("wb") as sink:
            self._created = True
            done = subprocess.run(
                [
                    "kind",
                    "create",
                    "cluster",
                    "--name",
                    self.name,
                    "--config",
                    str(config),
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--wait",
                    "180s",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"kind create cluster failed:\n{tail(log)}")
        kwok = ManagedProcess(
            "kwok",
            comp.kwok_args(
                self.binaries.binary("kwok"),
                self.kubeconfig,
                self.binaries.stages,
                comp.Ports.pick(),
            ),
            self.logs / "kwok.log",
        )
        kwok.start()
        self.processes.append(kwok)
        self._start_jaeger()
        self.start_seconds = time.monotonic() - began

    def _start_jaeger(self) -> None:
        """The trace store, as a local process beside kwok (our services run here too)."""
        jaeger = self.jaeger = JaegerServer.create(self.jaeger_binary.binary, self.workdir)
        proc = ManagedProcess("jaeger", jaeger.argv(), self.logs / "jaeger.log")
        proc.start()
        self.processes.append(proc)
        self._wait(proc, jaeger.ready, 60)

    def stop(self) -> None:
        super().stop()
        if self._created:
            with (self.logs / "kind-delete.log").open("wb") as sink:
                subprocess.run(
                    ["kind", "delete", "cluster", "--name", self.name],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            self._created = False

    def compact_storage(self) -> int:
        """Compact kind's etcd to its current revision with etcdctl in the etcd pod."""
        pod = f"etcd-{self.name}-control-plane"
        etcdctl = [
            str(self.binaries.binary("kubectl")),
            "--kubeconfig",
            str(self.kubeconfig),
            "-n",
            "kube-system",
            "exec",
            pod,
            "--",
            "etcdctl",
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--cert=/etc/kubernetes/pki/etcd/server.crt",
            "--key=/etc/kubernetes/pki/etcd/server.key",
        ]
        status = subprocess.run(
            [*etcdctl, "endpoint", "status", "-w", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        revision = int(json.loads(status.stdout)[0]["Status"]["header"]["revision"])
        subprocess.run([*etcdctl, "compact", str(revision), "--physical"], check=True)
        return revision

    def log_tails(self, lines: int = 30) -> str:
        return super().log_tails(lines) + f"\n(kind logs: kind export logs --name {self.name})"
