"""`./just bench-cluster`: the control plane's build, start and plain scheduling figures.

Prints ``name=value unit`` lines:
- ``cluster_build_cold_s`` (only when this run built the binaries),
- ``cluster_start_s``: warm cache to every component ready (the default ServiceAccount exists),
- ``sched_plain_pods_per_s``: PODS plain pods on NODES kwok nodes through the real
  kube-scheduler, from the first create to all Running. The baseline for the extender.
- ``sched_plain_backlog_pods_per_s``: the same pods created while their nodes are cordoned,
  timed from the uncordon to all Running: the scheduler (and kwok) without pod creation.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hami_common.k8s import NODES, PODS, KubeClient
from hami_common.k8s.watch import list_then_watch

from hami_e2e.build import BuildError, ensure_built
from hami_e2e.cluster import LocalCluster
from hami_e2e.namespaces import create_namespace
from hami_e2e.nodes import POOL_LABEL, NodePool, create_nodes

BENCH_NS = "bench"
BACKLOG_NS = "bench-backlog"


def plain_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }


class RunningCounter:
    """Counts the pods of a namespace that reached Running, from a list-then-watch."""

    def __init__(self, kube: KubeClient, namespace: str, target: int) -> None:
        self.running: set[str] = set()
        self.done = asyncio.Event()
        self._task = asyncio.create_task(self._watch(kube, namespace, target))

    async def _watch(self, kube: KubeClient, namespace: str, target: int) -> None:
        async for event in list_then_watch(kube, PODS, namespace=namespace):
            objs = event.object["items"] if event.type == "SYNC" else [event.object]
            for pod in objs:
                if pod.get("status", {}).get("phase") == "Running":
                    self.running.add(pod["metadata"]["name"])
            if len(self.running) >= target:
                self.done.set()
                return

    async def wait(self) -> None:
        async with asyncio.timeout(600):
            await self.done.wait()
        await self._task


async def _create_pods(
    kube: KubeClient, namespace: str, pods: int, concurrency: int, pool: str
) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        body = plain_pod(f"p-{i:05d}")
        body["spec"]["nodeSelector"] = {POOL_LABEL: pool}
        async with sem:
            await kube.create(PODS, body, namespace=namespace)

    await asyncio.gather(*(create(i) for i in range(pods)))


async def schedule_plain(kube: KubeClient, pods: int, nodes: int, concurrency: int) -> float:
    """Create ``pods`` pods at once and return pods/s from the first create to all Running."""
    await create_nodes(
        kube, [NodePool(name="bench", count=nodes, devices_per_node=0)], wait_ready=120
    )
    await create_namespace(kube, BENCH_NS)
    counter = RunningCounter(kube, BENCH_NS, pods)
    await asyncio.sleep(0.5)  # let the watch open before the first pod exists
    start = time.monotonic()
    await _create_pods(kube, BENCH_NS, pods, concurrency, "bench")
    created = time.monotonic() - start
    await counter.wait()
    elapsed = time.monotonic() - start
    print(f"# {pods} pods created in {created:.1f}s, all Running after {elapsed:.1f}s")
    return pods / elapsed


async def schedule_backlog(kube: KubeClient, pods: int, nodes: int, concurrency: int) -> float:
    """Pods/s when kube-scheduler drains a backlog: the pods are created while every node of
    their pool is cordoned, then the nodes are uncordoned at once; timed from the uncordon to
    all Running, so pod creation is not part of the figure."""
    pool = NodePool(name="backlog", count=nodes, devices_per_node=0)
    names = await create_nodes(kube, [pool], wait_ready=120)
    sem = asyncio.Semaphore(concurrency)

    async def cordon(node: str, unschedulable: bool) -> None:
        async with sem:
            await kube.patch(NODES, node, {"spec": {"unschedulable": unschedulable}})

    await asyncio.gather(*(cordon(n, True) for n in names))
    await create_namespace(kube, BACKLOG_NS)
    counter = RunningCounter(kube, BACKLOG_NS, pods)
    await _create_pods(kube, BACKLOG_NS, pods, concurrency, "backlog")
    start = time.monotonic()
    await asyncio.gather(*(cordon(n, False) for n in names))
    await counter.wait()
    elapsed = time.monotonic() - start
    print(f"# {pods} pending pods all Running {elapsed:.1f}s after uncordoning {nodes} nodes")
    return pods / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-cluster", description=__doc__)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        _, cold = ensure_built()
    except BuildError as exc:
        print(f"bench-cluster: {exc}", file=sys.stderr)
        return 1
    if cold is not None:
        print(f"cluster_build_cold_s={cold:.0f} s")
    with tempfile.TemporaryDirectory(prefix="hami-bench-") as tmp, LocalCluster(Path(tmp)) as cl:
        print(f"cluster_start_s={cl.start_seconds:.1f} s")

        async def run() -> tuple[float, float]:
            async with cl.client() as kube:
                plain = await schedule_plain(kube, args.pods, args.nodes, args.concurrency)
                backlog = await schedule_backlog(kube, args.pods, args.nodes, args.concurrency)
                return plain, backlog

        plain, backlog = asyncio.run(run())
        cl.check()
        print(f"sched_plain_pods_per_s={plain:.1f} pods/s")
        print(f"sched_plain_backlog_pods_per_s={backlog:.1f} pods/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
