"""What makes a fake node observable: its node monitor, and real GPU work in its "containers".

Fake nodes have no container runtime, so the harness plays that part too, as it plays kubelet's
device manager: when the NVIDIA plugin's ``Allocate`` answers for a container, `Containers`
starts the container's workload (``hook/tests/t_work``, preloaded with the real ``libvgpu.so``,
on the fake driver) with the env the plugin answered and the plugin's mounts applied the way a
runtime would: the limits file and the container's region folder are the host paths the plugin
mounted. The hook then writes a real region in ``<node>/hook/vgpu/containers/<pod uid>_<name>/``,
and the node's monitor (`monitor_process`, the real ``python -m hami_monitor``) reads it and
asks the fake ``libnvidia-ml.so.1`` (through NVML, as on a GPU node) for the devices' own
numbers. Each node has one simulated GPU state file (``<node>/fakegpu.state``) that its
containers and its monitor share; a container sees only its devices (``FAKE_GPU_VISIBLE``).

A workload holds half of each of its devices' memory limit (all of a device's memory when it
has none) and launches 1 ms kernels until its pod is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Protocol

from hami_e2e.jaeger import otel_env
from hami_e2e.paths import repo_root
from hami_e2e.process import ManagedProcess

log = logging.getLogger(__name__)
HOOK_BUILD = repo_root() / "hook" / "build" / "release"
LIMITS_FILE = "/etc/hami/vgpu-limits.conf"
MIB = 1 << 20


class _Cluster(Protocol):
    kubeconfig: Path
    logs: Path

    @property
    def otlp_endpoint(self) -> str | None: ...


class _Mount(Protocol):
    container_path: str
    host_path: str


class _Response(Protocol):
    @property
    def envs(self) -> Any: ...

    @property
    def mounts(self) -> Any: ...


def hook_build() -> Path:
    """The hook's release build (libvgpu.so, the fake driver, t_work), or an error saying how
    to make it."""
    for need in ("libvgpu.so", "t_work", "fake/libnvidia-ml.so.1"):
        if not (HOOK_BUILD / need).exists():
            raise FileNotFoundError(f"{HOOK_BUILD / need} is missing: run ./just build-hook")
    return HOOK_BUILD


def _spec(root: Path) -> list[dict[str, Any]]:
    doc = json.loads((root / "spec.json").read_text())
    devices: list[dict[str, Any]] = doc["devices"] if isinstance(doc, dict) else doc
    return sorted(devices, key=lambda d: int(d.get("index", 0)))


def fake_gpu_env(root: Path) -> dict[str, str]:
    """The simulated GPUs of the node in ``root`` (its spec: UUIDs, model, memory)."""
    devices = _spec(root)
    return {
        "FAKE_GPU_STATE": str(root / "fakegpu.state"),
        "FAKE_GPU_COUNT": str(len(devices)),
        "FAKE_GPU_MEM_MIB": str(max(int(d.get("memory_mib", 16384)) for d in devices)),
        "FAKE_GPU_UUIDS": ",".join(str(d["uuid"]) for d in devices),
        "FAKE_GPU_NAME": str(devices[0].get("model", "Fake GPU")) if devices else "Fake GPU",
    }


def monitor_process(
    cluster: _Cluster, node: str, root: Path, port: int, *, detachable: bool = False
) -> ManagedProcess:
    """The node's monitor (``python -m hami_monitor``) over the node's hook folder, with NVML
    answered by the fake driver; not started."""
    build = hook_build()
    argv = [
        sys.executable, "-m", "hami_monitor", "--node-name", node,
        "--hook-path", str(root / "hook"), "--port", str(port),
        "--kubeconfig", str(cluster.kubeconfig), "--feedback-interval-seconds", "1",
        "--reap-after-seconds", "2",
    ]  # fmt: skip
    env = {**os.environ, **fake_gpu_env(root), "LD_LIBRARY_PATH": str(build / "fake"),
           **otel_env(cluster.otlp_endpoint, "hami-monitor")}  # fmt: skip
    return ManagedProcess(f"monitor-{node}", argv, cluster.logs / f"monitor-{node}.log",
                          env=env, die_with_parent=not detachable)  # fmt: skip


def host_path(mounts: list[_Mount], container_path: str) -> str:
    """Where a path inside the container lives on the host, through the mounts (the longest
    mount that contains it wins, as in a mount namespace)."""
    best: _Mount | None = None
    for m in mounts:
        inside = container_path == m.container_path or container_path.startswith(
            m.container_path.rstrip("/") + "/"
        )
        if inside and (best is None or len(m.container_path) > len(best.container_path)):
            best = m
    if best is None:
        return container_path
    return best.host_path + container_path[len(best.container_path) :]


class Containers:
    """The container runtime's part on one fake node: a workload per allocated container,
    stopped when its pod goes."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root, self.logs = root, logs
        self.build = hook_build()
        self.running: dict[str, list[ManagedProcess]] = {}  # pod uid -> its containers

    def start(self, namespace: str, pod: str, container: str, response: _Response) -> None:
        mounts = list(response.mounts)
        envs = dict(response.envs)
        region = envs.get("CUDA_DEVICE_MEMORY_SHARED_CACHE", "")
        folder = Path(host_path(mounts, str(Path(region).parent))) if region else None
        if folder is None or "_" not in folder.name:
            log.warning("%s/%s %s: no region folder in the Allocate answer", namespace, pod,
                        container)  # fmt: skip
            return
        uid = folder.name.split("_", 1)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "FAKE_GPU"))}
        env.update(envs)
        env.update(fake_gpu_env(self.root))
        env["CUDA_DEVICE_MEMORY_SHARED_CACHE"] = host_path(mounts, region)
        limits = host_path(mounts, LIMITS_FILE)
        if Path(limits).exists():  # the file the hook prefers; its region path, translated
            text = Path(limits).read_text().replace(region, env["CUDA_DEVICE_MEMORY_SHARED_CACHE"])
            translated = self.root / "limits-seen-by-containers" / Path(limits).name
            translated.parent.mkdir(parents=True, exist_ok=True)
            translated.write_text(text)
            env["HAMI_VGPU_LIMITS_FILE"] = str(translated)
        visible = envs.get("NVIDIA_VISIBLE_DEVICES", "").split(",")
        index = {str(d["uuid"]): int(d.get("index", i)) for i, d in enumerate(_spec(self.root))}
        env["FAKE_GPU_VISIBLE"] = ",".join(str(index[u]) for u in visible if u in index)
        limit = envs.get("CUDA_DEVICE_MEMORY_LIMIT_0", "").rstrip("m")
        env["WORK_MIB"] = str(int(limit) // 2) if limit.isdigit() and int(limit) else "256"
        env["LD_PRELOAD"] = str(self.build / "libvgpu.so")
        name = f"work-{namespace}-{pod}-{container}"
        proc = ManagedProcess(name, [str(self.build / "t_work")], self.logs / f"{name}.log",
                              env=env)  # fmt: skip
        proc.start()
        self.running.setdefault(uid, []).append(proc)

    def stop_pod(self, uid: str) -> None:
        for proc in self.running.pop(uid, []):
            proc.stop(timeout=5)

    def stop(self) -> None:
        for uid in list(self.running):
            self.stop_pod(uid)


class _Allocation(Protocol):
    namespace: str
    pod: str
    container: str

    @property
    def response(self) -> _Response | None: ...


def on_allocation(containers: Containers) -> Any:
    """kubelet's stand-in's ``on_allocation``: start the container's workload."""

    def started(record: _Allocation) -> None:
        if record.response is not None:
            containers.start(record.namespace, record.pod, record.container, record.response)

    return started


DASHBOARD = repo_root() / "dashboards" / "hami-rs.json"


class _Stack(Protocol):
    extender_tls: Any

    def extender_url(self, port: int | None = None) -> str: ...

    @property
    def cluster(self) -> Any: ...


def where_to_look(
    stack: _Stack, monitors: dict[str, int], prometheus_url: str, *, traces_line: bool = True
) -> list[str]:
    """The lines cluster-up and the demo print: the web UI, Prometheus and the dashboard, the
    node monitors, the traces (unless ``traces_line`` is off: printed elsewhere), and
    ``kubectl hami`` set up for the stack."""
    ca, ui, traces = stack.extender_tls.ca_file, stack.extender_url(), stack.cluster.traces_url
    cli = Path(sys.executable).parent / "kubectl-hami"
    lines = [
        f"web UI: {ui}/ui  (the extender's certificate is signed by {ca}; a browser asks to "
        "trust it)",
        f"Prometheus: {prometheus_url}  (the dashboard {DASHBOARD} reads it: import it into "
        "Grafana with this data source)",
        *(f"node monitor of {node}: http://127.0.0.1:{port}/metrics"
          for node, port in monitors.items()),
        "kubectl hami (kubectl-hami, installed with the packages; on the PATH, kubectl finds it):",
        f"  export HAMI_EXTENDER_URL={ui} HAMI_EXTENDER_CA={ca} "
        f"HAMI_PROMETHEUS_URL={prometheus_url} HAMI_TRACES_URL={traces or ''}",
        f"  {cli} top nodes; {cli} top pods -A; {cli} explain POD -n NAMESPACE",
    ]  # fmt: skip
    if traces and traces_line:
        lines.insert(2 + len(monitors), f"traces (Jaeger): {traces}  (each pod's trace: "
                     f"{traces}/api/v3/traces/<id>; links on the UI's pod pages)")  # fmt: skip
    return lines
