"""Scheduler throughput with and without the extender, on one control plane, in one run.

A local control plane (the e2e one) whose kube-scheduler has the extender configured as HAMi's
chart does; NODES kwok nodes, each registering DEVICES GPUs (the register annotation the device
plugin writes). First PODS plain pods (the ``sched_plain_pods_per_s`` baseline, as
``hami_e2e.bench``), then PODS GPU pods on the same nodes through kube-scheduler, the extender
(a real process: filter, then bind with the node lock) and `FakePlugin` (the device plugin's
annotation steps after Allocate: ``bind-phase=success`` and the node lock released). Each rate is
from the first create to every pod Running. Prints ``sched_plain_pods_per_s``,
``sched_extender_pods_per_s`` and ``sched_extender_ratio`` (target >= 0.8); then, as comments,
the CPU each process spent per pod in each run and the ratio's ceiling on this machine (what it
would be if the extender and the plugin's stand-in cost nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from hami_common.k8s import NODES, PODS, KubeClient
from hami_common.k8s.watch import list_then_watch
from hami_e2e.backend import make_cluster
from hami_e2e.bench import plain_pod
from hami_e2e.build import ensure_built
from hami_e2e.components import free_port
from hami_e2e.namespaces import create_namespace
from hami_e2e.nodes import NodePool, create_nodes
from hami_extender.testing import REGISTER, FakePlugin, extender_config, gpu_pod
from hami_extender.testing import register_annotation as register

Json = dict[str, Any]
BENCH = Path(__file__).name
LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000", "nvidia.com/gpucores": "5"}


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by every user-space process, summed by command
    name (the control plane's binaries; the extender, and this process, for the Pythons).
    Kernel threads (no command line) are left out: their share is the machine's, not a pod's."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            argv = stat.with_name("cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv[0]:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name.startswith("python"):  # which Python: the extender, or this (the plugin's part)
            name = "extender" if b"hami_extender" in argv else Path(argv[1].decode()).name
        fields = text[text.rindex(")") + 2 :].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def cpu_used(before: dict[str, float], after: dict[str, float], pods: int) -> dict[str, float]:
    """CPU milliseconds per pod by process between two `cpu_seconds` readings."""
    return {k: (after.get(k, 0.0) - before.get(k, 0.0)) / pods * 1000 for k in after}


WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY")
PER_POD = ("pods", "nodes", "events", "resourceclaims")  # leases and the like tick on their own


async def api_writes(kube: KubeClient) -> dict[str, float]:
    """Writes the API server has served so far (its own ``apiserver_request_total``), by
    ``resource[/subresource]``, for the resources a pod's scheduling writes."""
    text = (await kube.request_bytes("GET", "/metrics")).decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        if labels.get("verb") not in WRITE_VERBS or labels.get("resource") not in PER_POD:
            continue
        key = labels["resource"] + (
            f"/{labels['subresource']}" if labels.get("subresource") else ""
        )
        totals[key] = totals.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def writes_per_pod(
    before: dict[str, float], after: dict[str, float], pods: int
) -> dict[str, float]:
    return {k: (v - before.get(k, 0.0)) / pods for k, v in after.items() if v > before.get(k, 0.0)}


def writes_line(label: str, per_pod: dict[str, float]) -> str:
    parts = " ".join(f"{k}={v:.2f}" for k, v in sorted(per_pod.items(), key=lambda kv: -kv[1]))
    return f"# {label}: API writes per pod by resource, {sum(per_pod.values()):.2f} in all: {parts}"


def cpu_line(label: str, used: dict[str, float]) -> str:
    """CPU milliseconds per pod by process, the busiest first."""
    top = sorted(((v, k) for k, v in used.items() if v >= 0.5), reverse=True)[:7]
    parts = " ".join(f"{k}={v:.0f}" for v, k in top)
    return f"# {label}: CPU ms per pod by process, {sum(used.values()):.0f} in all: {parts}"


def ratio_ceiling(plain: dict[str, float], gpu: dict[str, float]) -> float:
    """The ratio this machine would allow if the extender and the plugin's stand-in (this
    process, less what it spends creating and watching pods, as in the plain run) used no CPU:
    with every process on the same cores the rates are bound by CPU, so they stand as the CPU
    per pod, and what is left is the control plane's own work for HAMi's protocol (the node
    lock written twice, the pod patched, the Binding and the events)."""
    ours = gpu.get("extender", 0.0) + max(0.0, gpu.get(BENCH, 0.0) - plain.get(BENCH, 0.0))
    return sum(plain.values()) / max(sum(gpu.values()) - ours, 1e-9)


async def schedule(
    kube: KubeClient, ns: str, make: Callable[[int], Json], pods: int, concurrency: int,
    *, setup: Callable[[], Awaitable[object]] | None = None,
) -> float:  # fmt: skip
    """Create ``pods`` pods (``concurrency`` creates in flight); pods/s until all Running.
    ``setup`` runs once the namespace exists, before the clock starts (claim templates)."""
    await create_namespace(kube, ns)
    if setup is not None:
        await setup()
    running: set[str] = set()
    done = asyncio.Event()

    async def watch_running() -> None:
        async for event in list_then_watch(kube, PODS, namespace=ns):
            objs = event.object["items"] if event.type == "SYNC" else [event.object]
            for pod in objs:
                if (pod.get("status") or {}).get("phase") == "Running":
                    running.add(pod["metadata"]["name"])
            if len(running) >= pods:
                done.set()
                return

    watcher = asyncio.create_task(watch_running())
    await asyncio.sleep(0.5)  # the watch is open before the first pod exists
    sem = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        async with sem:
            await kube.create(PODS, make(i), namespace=ns)

    start = time.monotonic()
    await asyncio.gather(*(create(i) for i in range(pods)))
    created = time.monotonic() - start
    await asyncio.wait_for(done.wait(), timeout=900)
    elapsed = time.monotonic() - start
    await watcher
    print(f"# {ns}: {pods} pods created in {created:.1f}s, all Running after {elapsed:.1f}s")
    return pods / elapsed


def _wait_ready(url: str, proc: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the extender exited before it was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready in {within}s")


async def _measure(cluster: Any, args: argparse.Namespace) -> tuple[float, float, dict[str, float]]:
    async with cluster.client() as kube:
        pool = NodePool(name="bench", count=args.nodes, devices_per_node=args.devices)
        names = await create_nodes(kube, [pool], wait_ready=120)
        for node in names:
            value = register(pool.devices(node))
            await kube.patch(NODES, node, {"metadata": {"annotations": {REGISTER: value}}})
        before, writes_before = cpu_seconds(), await api_writes(kube)
        plain = await schedule(kube, "bench-plain", lambda i: plain_pod(f"p-{i:05d}"),
                               args.pods, args.concurrency)  # fmt: skip
        middle, writes_middle = cpu_seconds(), await api_writes(kube)
        # The plugins' stand-in gets a client of its own with a few connections: the per-node
        # plugins it stands in for each make one call at a time, while one client with a
        # connection per concurrent call makes httpcore rescan a large pool on every request.
        plugin_kube = cluster.client(max_connections=8)
        async with plugin_kube, FakePlugin(plugin_kube, "bench-gpu").running():
            gpu = await schedule(kube, "bench-gpu", lambda i: gpu_pod(f"g-{i:05d}", LIMITS),
                                 args.pods, args.concurrency)  # fmt: skip
        after, writes_after = cpu_seconds(), await api_writes(kube)
        used = await nodes_used(kube, "bench-gpu")
        plain_cpu = cpu_used(before, middle, args.pods)
        gpu_cpu = cpu_used(middle, after, args.pods)
        plain_writes = writes_per_pod(writes_before, writes_middle, args.pods)
        gpu_writes = writes_per_pod(writes_middle, writes_after, args.pods)
        print(cpu_line("plain", plain_cpu))
        print(cpu_line("extender", gpu_cpu))
        print(f"# the ratio with the extender and the plugin's stand-in at zero CPU: "
              f"{ratio_ceiling(plain_cpu, gpu_cpu):.2f}")  # fmt: skip
        print(writes_line("plain", plain_writes))
        print(writes_line("gpu", gpu_writes))
        # a GPU takes 10 of these pods (its split count; 1000 MiB and 5% each fit 10 times)
        packed = -(-args.pods // (args.devices * 10))
        print(f"# the GPU pods landed on {used} nodes; packing them one at a time needs {packed}")
    figures = {
        "api_writes_per_plain_pod": sum(plain_writes.values()),
        "api_writes_per_gpu_pod": sum(gpu_writes.values()),
        "extender_cpu_ms_per_gpu_pod": gpu_cpu.get("extender", 0.0),
        "burst_nodes_used": float(used),
        "burst_nodes_packed": float(packed),
    }
    return plain, gpu, figures


async def nodes_used(kube: KubeClient, ns: str) -> int:
    pods = (await kube.list(PODS, namespace=ns))["items"]
    return len({p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")})


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench-sched", description=__doc__)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keep", type=Path, help="keep the cluster's and extender's logs here")
    parser.add_argument("--node-lock", choices=("memory", "annotation"), default="memory",
                        help="the extender's --node-lock")  # fmt: skip
    parser.add_argument("--prefer-idle-nodes", action="store_true",
                        help="the extender's --prefer-idle-nodes (spreads a burst)")  # fmt: skip
    parser.add_argument("--burst-window", type=int, default=4,
                        help="the extender's --burst-window (1: the fullest node)")  # fmt: skip
    args = parser.parse_args()
    ensure_built()
    port = free_port()
    extra = {"extenders": [extender_config(f"http://127.0.0.1:{port}")]}
    with tempfile.TemporaryDirectory(prefix="hami-bench-sched-") as scratch:
        tmp = str(args.keep or scratch)
        cluster = make_cluster(Path(tmp) / "cluster", scheduler_extra=extra)
        cluster.start()
        proc: subprocess.Popen[bytes] | None = None
        try:
            with (Path(tmp) / "extender.log").open("wb") as log:
                # plain HTTP on loopback (the listening rule allows it); the GPU pods here are
                # the default profile's (no webhook sets schedulerName), so is the extender
                proc = subprocess.Popen(
                    [sys.executable, "-m", "hami_extender", "--kubeconfig",
                     str(cluster.kubeconfig), "--port", str(port),
                     "--scheduler-name", "default-scheduler", "--node-lock", args.node_lock,
                     "--prefer-idle-nodes" if args.prefer_idle_nodes else "--no-prefer-idle-nodes",
                     "--burst-window", str(args.burst_window)],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            _wait_ready(f"http://127.0.0.1:{port}/readyz", proc, 60)
            plain, gpu, figures = asyncio.run(_measure(cluster, args))
            cluster.check()
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
            cluster.stop()
    print(f"sched_plain_pods_per_s={plain:.1f} pods/s")
    print(f"sched_extender_pods_per_s={gpu:.1f} pods/s")
    print(f"sched_extender_ratio={gpu / plain:.2f}")
    print(f"api_writes_per_plain_pod={figures['api_writes_per_plain_pod']:.2f} writes")
    print(f"api_writes_per_gpu_pod={figures['api_writes_per_gpu_pod']:.2f} writes")
    beyond = figures["api_writes_per_gpu_pod"] - figures["api_writes_per_plain_pod"]
    print(f"api_writes_per_gpu_pod_beyond_plain={beyond:.2f} writes (target <= 1: the plugin's "
          "success mark; the Binding and creation are in both)")  # fmt: skip
    print(f"extender_cpu_ms_per_gpu_pod={figures['extender_cpu_ms_per_gpu_pod']:.1f} ms")
    print(f"burst_nodes_used={figures['burst_nodes_used']:.0f} nodes "
          f"(packing needs {figures['burst_nodes_packed']:.0f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
