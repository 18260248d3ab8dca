"""`./just bench-scale`: a burst at scale, with faults, on the real control plane.

NODES kwok nodes x GPUS GPUs (each registering its devices as the NVIDIA plugin does), the real
kube-scheduler with the extender configured as HAMi's chart does, the extender as two replicas
with leader election behind a connection-level proxy that plays the Service (each new connection
goes to the replica whose ``/readyz`` answers 200: the leader), and the NVIDIA plugin's
allocation path for every node: `hami_common.deviceplugin.allocator.Allocator` with the plugin's
own `NvidiaPolicy`, called as kubelet calls Allocate, in this process (a thousand plugin
processes would not fit on this machine; the gRPC hop is measured by ``./just bench-plugin``).

First PODS plain pods (the baseline, through the same kube-scheduler), then PODS GPU pods created
at once. During the burst the leading extender is SIGKILLed twice (at 30% and 60% of the pods
bound; a new replica is started each time, so there is always a standby) and one node's plugin
is restarted (at 50%: its allocator, with whatever it held in memory, is replaced).

Prints ``scale_plain_pods_per_s`` (the baseline), ``scale_pods_per_s`` (GPU pods, from the first
create until every pod is allocated), ``scale_p99_pod_to_bound_s`` (from a pod's creation to its
binding), ``scale_overcommitted_devices`` (devices whose pods' allocations exceed them; must be
0), ``scale_stuck_pods`` (GPU pods not allocated at the end; must be 0) and ``scale_nodes_used``
with the nodes packing needs. kube-scheduler scores every feasible node, as the chart sets it
(``percentageOfNodesToScore: 100``): with its adaptive default it would hand the extender only a
rotating share of the nodes above 100 (42% at 1,000), and binpack could not see the fullest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import hami_rustcore as core
import httpx
from bench_sched import schedule
from hami_common.deviceplugin.allocator import Allocator
from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.runtime import to_allocate_keys
from hami_common.k8s import NAMESPACES, NODES, PODS, KubeClient
from hami_common.k8s.watch import list_then_watch
from hami_common.protocol.annotations import BIND_PHASE, PHASE_ALLOCATING, PHASE_SUCCESS
from hami_common.telemetry import in_memory_tracing
from hami_e2e.backend import make_cluster
from hami_e2e.bench import plain_pod
from hami_e2e.build import ensure_built
from hami_e2e.components import free_port
from hami_e2e.nodes import NodePool, create_nodes
from hami_extender.testing import ALLOCATED, REGISTER, extender_config, gpu_pod
from hami_extender.testing import register_annotation as register
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.policy import NvidiaPolicy

Json = dict[str, Any]
LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000", "nvidia.com/gpucores": "5"}
NS = "scale-gpu"


class Proxy:
    """kube-proxy's part for the extender's Service: a TCP proxy that sends each new connection
    to the first backend whose ``/readyz`` last answered 200 (checked every 0.2 s)."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.ready: int | None = None
        self.port = free_port()

    async def _probe(self) -> None:
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                ready = None
                for port in list(self.backends):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            ready = port
                            break
                self.ready = ready
                await asyncio.sleep(0.2)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.ready is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.ready)
        except OSError:
            writer.close()
            return
        with contextlib.suppress(asyncio.CancelledError):  # the bench is over
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_when_cancelled)
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        async with server:
            await asyncio.gather(server.serve_forever(), self._probe())


def _quiet_when_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """A connection accepted as the bench ends is cancelled before it starts, and asyncio's
    stream callback reports that as an error; everything else goes to the default handler."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


class Replicas:
    """The extender replicas, each a process with leader election (lease of 4 s)."""

    def __init__(self, kubeconfig: Path, logs: Path) -> None:
        self.kubeconfig, self.logs = kubeconfig, logs
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started = 0

    def start(self, port: int) -> None:
        self.started += 1
        log = (self.logs / f"extender-{self.started}.log").open("wb")
        self.procs[port] = subprocess.Popen(
            [sys.executable, "-m", "hami_extender", "--kubeconfig", str(self.kubeconfig),
             "--port", str(port), "--metrics-port", "-1", "--scheduler-name",
             "default-scheduler", "--leader-elect", "--lease-namespace", "default",
             "--lease-duration-seconds", "4", "--identity", f"replica-{self.started}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def leader(self) -> int | None:
        for port in self.procs:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return port
        return None

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)


class Plugins:
    """The NVIDIA plugin's allocation path for every node, called as kubelet calls Allocate:
    once a pod is bound to the node, per GPU container, one call at a time per node."""

    def __init__(self, kube: KubeClient, nodes: list[str], hook: Path) -> None:
        self.kube, self.hook = kube, hook
        self.keys = to_allocate_keys()
        self.tracer = in_memory_tracing("bench")[0].get_tracer("bench")
        self.allocators = {node: self._allocator(node) for node in nodes}
        self.done: set[str] = set()
        self.failures = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def _allocator(self, node: str) -> Allocator:
        policy = NvidiaPolicy(NvidiaOptions(), hook_path=self.hook, lock_dir=self.hook / "lock")
        return Allocator(self.kube, node, policy, to_allocate_keys=self.keys, tracer=self.tracer)

    def restart(self, node: str) -> None:
        """The node's plugin restarted: a new allocator, nothing kept in memory."""
        self.allocators[node] = self._allocator(node)

    async def _allocate(self, pod: Json) -> None:
        node, uid = pod["spec"]["nodeName"], pod["metadata"]["uid"]
        counts = [
            int(c["resources"]["limits"]["nvidia.com/gpu"]) for c in pod["spec"]["containers"]
        ]
        for count in counts:
            request = pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(
                devices_ids=[f"x-{i}" for i in range(count)])])  # fmt: skip
            try:
                await self.allocators[node].allocate(request)
            except Exception:  # kubelet retries a failed admission
                self.failures += 1
                self.done.discard(uid)
                return

    async def run(self) -> None:
        async for event in list_then_watch(self.kube, PODS, namespace=NS):
            pods = event.object.get("items", []) if event.type == "SYNC" else [event.object]
            for pod in pods:
                ann = pod["metadata"].get("annotations") or {}
                uid = pod["metadata"]["uid"]
                if (event.type != "DELETED" and uid not in self.done
                        and pod["spec"].get("nodeName")
                        and ann.get(BIND_PHASE) == PHASE_ALLOCATING):  # fmt: skip
                    self.done.add(uid)
                    task = asyncio.create_task(self._allocate(pod))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)


async def until(done: Any, interval: float) -> None:
    """Returns once ``done()`` holds (checked every ``interval`` s)."""
    while True:
        if done():
            return
        await asyncio.sleep(interval)


async def burst(kube: KubeClient, args: argparse.Namespace, replicas: Replicas,
                plugins: Plugins, backends: list[int]) -> dict[str, float]:  # fmt: skip
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    allocated: set[str] = set()
    last: dict[str, Json] = {}
    faults: list[str] = []

    async def watch() -> None:
        async for event in list_then_watch(kube, PODS, namespace=NS):
            pods = event.object.get("items", []) if event.type == "SYNC" else [event.object]
            for pod in pods:
                name = pod["metadata"]["name"]
                last[name] = pod
                if pod["spec"].get("nodeName") and name not in bound:
                    bound[name] = time.monotonic()
                ann = pod["metadata"].get("annotations") or {}
                if ann.get(BIND_PHASE) == PHASE_SUCCESS:
                    allocated.add(name)

    async def inject() -> None:
        for share, fault in ((0.3, "extender"), (0.5, "plugin"), (0.6, "extender")):
            await until(lambda share=share: len(bound) >= share * args.pods, 0.2)
            if fault == "extender":
                leader = replicas.leader()
                if leader is not None:
                    replicas.kill(leader)
                    port = leader  # a new replica takes the freed port, as a new pod
                    replicas.start(port)
                    faults.append(f"killed the leading extender at {len(bound)} pods bound")
            else:
                node = last[max(bound, key=bound.__getitem__)]["spec"]["nodeName"]
                plugins.restart(node)
                faults.append(f"restarted the plugin of {node} at {len(bound)} pods bound")

    await kube.create(NAMESPACES, {"metadata": {"name": NS}})
    watcher, plugin_watch = asyncio.create_task(watch()), asyncio.create_task(plugins.run())
    await asyncio.sleep(1.0)
    sem = asyncio.Semaphore(args.concurrency)

    async def create(i: int) -> None:
        async with sem:
            name = f"g-{i:05d}"
            await kube.create(PODS, gpu_pod(name, LIMITS), namespace=NS)
            created[name] = time.monotonic()

    start = time.monotonic()
    faulty = asyncio.create_task(inject())
    await asyncio.gather(*(create(i) for i in range(args.pods)))
    deadline = start + args.timeout
    await until(lambda: len(allocated) >= args.pods or time.monotonic() >= deadline, 0.5)
    elapsed = time.monotonic() - start
    for task in (faulty, watcher, plugin_watch):
        task.cancel()
    for line in faults:
        print(f"# {line}")
    print(f"# plugin calls that failed (kubelet would retry them): {plugins.failures}")
    waits = sorted(bound[n] - created[n] for n in bound if n in created)
    p99 = waits[int(len(waits) * 0.99) - 1] if waits else float("nan")
    return {
        "pods_per_s": len(allocated) / elapsed,
        "p99_bound_s": p99,
        "overcommitted": float(overcommitted(last.values(), args)),
        "stuck": float(args.pods - len(allocated)),
        "nodes": float(len({p["spec"].get("nodeName") for p in last.values()} - {None})),
    }


def overcommitted(pods: Any, args: argparse.Namespace) -> int:
    """Devices whose pods' allocations (as their annotations say) exceed their memory."""
    used: dict[str, int] = defaultdict(int)
    for pod in pods:
        text = (pod["metadata"].get("annotations") or {}).get(ALLOCATED)
        if pod["spec"].get("nodeName") and text:
            for ctr in core.decode_pod_devices(text):
                for dev in ctr:
                    used[dev.uuid] += dev.usedmem
    return sum(1 for mib in used.values() if mib > args.memory)


async def _measure(cluster: Any, args: argparse.Namespace, replicas: Replicas,
                   backends: list[int], hook: Path) -> tuple[float, dict[str, float]]:  # fmt: skip
    async with cluster.client(max_connections=32) as kube:
        pool = NodePool(name="scale", count=args.nodes, devices_per_node=args.devices,
                        device_memory_mib=args.memory)  # fmt: skip
        names = await create_nodes(kube, [pool], wait_ready=600, concurrency=50)
        sem = asyncio.Semaphore(50)

        async def registered(node: str) -> None:
            async with sem:
                value = register(pool.devices(node))
                await kube.patch(NODES, node, {"metadata": {"annotations": {REGISTER: value}}})

        await asyncio.gather(*(registered(n) for n in names))
        plain = await schedule(kube, "scale-plain", lambda i: plain_pod(f"p-{i:05d}"),
                               args.pods, args.concurrency)  # fmt: skip
        plugin_kube = cluster.client(max_connections=16)
        async with plugin_kube:
            plugins = Plugins(plugin_kube, names, hook)
            figures = await burst(kube, args, replicas, plugins, backends)
    return plain, figures


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench-scale", description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--memory", type=int, default=32768, help="MiB per GPU")
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", type=Path, help="keep the logs here")
    parser.add_argument("--percentage-of-nodes-to-score", type=int, default=100,
                        help="kube-scheduler's (the chart's kubeScheduler value; 0: its "
                        "adaptive default, which above 100 nodes hands the extender a rotating "
                        "share of them)")  # fmt: skip
    args = parser.parse_args()
    ensure_built()
    backends = [free_port(), free_port()]
    proxy = Proxy(backends)
    extra = {"extenders": [extender_config(f"http://127.0.0.1:{proxy.port}")],
             "percentageOfNodesToScore": args.percentage_of_nodes_to_score}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hami-bench-scale-") as scratch:
        tmp = Path(args.keep or scratch)
        cluster = make_cluster(tmp / "cluster", scheduler_extra=extra)
        cluster.start()
        replicas = Replicas(cluster.kubeconfig, tmp)
        try:
            for port in backends:
                replicas.start(port)

            async def run() -> tuple[float, dict[str, float]]:
                serving = asyncio.create_task(proxy.run())
                await until(lambda: proxy.ready is not None, 0.2)
                try:
                    return await _measure(cluster, args, replicas, backends, tmp / "hook")
                finally:
                    serving.cancel()

            plain, figures = asyncio.run(run())
            cluster.check()
        finally:
            replicas.stop()
            cluster.stop()
    # a GPU takes 10 of these pods (its split count; 1000 MiB and 5% each fit 10 times)
    packed = -(-args.pods // (args.devices * 10))
    print(f"scale_nodes_used={figures['nodes']:.0f} nodes (packing needs {packed})")
    print(f"scale_plain_pods_per_s={plain:.1f} pods/s")
    print(f"scale_pods_per_s={figures['pods_per_s']:.1f} pods/s")
    print(f"scale_p99_pod_to_bound_s={figures['p99_bound_s']:.1f} s")
    print(f"scale_overcommitted_devices={figures['overcommitted']:.0f}")
    print(f"scale_stuck_pods={figures['stuck']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
