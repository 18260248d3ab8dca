"""`just bench-cluster`: the control plane's build, start and plain scheduling figures.

Prints ``name=value unit`` lines:
- ``cluster_build_cold_s`` (only when this run built the binaries),
- ``cluster_start_s``: warm cache to every component ready (the default ServiceAccount exists),
- ``sched_plain_pods_per_s``: PODS plain pods on NODES kwok nodes through the real
  kube-scheduler, from the first create to all Running. The baseline for the extender.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hami_common.k8s import NAMESPACES, PODS, SERVICE_ACCOUNTS, KubeClient, NotFound
from hami_common.k8s.watch import list_then_watch

from hami_e2e.build import BuildError, ensure_built
from hami_e2e.cluster import LocalCluster
from hami_e2e.nodes import NodePool, create_nodes

BENCH_NS = "bench"


def plain_pod(name: str) -> dict[str, object]:
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


async def _namespace(kube: KubeClient) -> None:
    await kube.create(NAMESPACES, {"metadata": {"name": BENCH_NS}})
    while True:
        try:
            await kube.get(SERVICE_ACCOUNTS, "default", namespace=BENCH_NS)
            return
        except NotFound:
            await asyncio.sleep(0.1)


async def schedule_plain(kube: KubeClient, pods: int, nodes: int, concurrency: int) -> float:
    """Create ``pods`` pods at once and return pods/s from the first create to all Running."""
    pool = NodePool(name="bench", count=nodes, devices_per_node=0)
    await create_nodes(kube, [pool], wait_ready=120)
    await _namespace(kube)
    running: set[str] = set()
    all_running = asyncio.Event()

    async def watch_running() -> None:
        async for event in list_then_watch(kube, PODS, namespace=BENCH_NS):
            objs = event.object["items"] if event.type == "SYNC" else [event.object]
            for pod in objs:
                if pod.get("status", {}).get("phase") == "Running":
                    running.add(pod["metadata"]["name"])
            if len(running) >= pods:
                all_running.set()
                return

    watcher = asyncio.create_task(watch_running())
    await asyncio.sleep(0.5)  # let the watch open before the first pod exists
    sem = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        async with sem:
            await kube.create(PODS, plain_pod(f"p-{i:05d}"), namespace=BENCH_NS)

    start = time.monotonic()
    await asyncio.gather(*(create(i) for i in range(pods)))
    created = time.monotonic() - start
    await asyncio.wait_for(all_running.wait(), timeout=600)
    elapsed = time.monotonic() - start
    await watcher
    print(f"# {pods} pods created in {created:.1f}s, all Running after {elapsed:.1f}s")
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

        async def run() -> float:
            async with cl.client() as kube:
                return await schedule_plain(kube, args.pods, args.nodes, args.concurrency)

        rate = asyncio.run(run())
        cl.check()
        print(f"sched_plain_pods_per_s={rate:.1f} pods/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
