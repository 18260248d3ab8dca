"""`./just bench-plugin`: Allocate round trips through the NVIDIA plugin on the real API server.

A local control plane, one kwok node with 4 fake GPUs, the plugin as its own process (fake
backend) and the kubelet stand-in. Each sample places one pod as HAMi's scheduler does (filter
annotations, node lock, bind-phase, Binding; not timed) and times the stand-in's Allocate call:
the plugin's pod lookup (node and pod GETs), the annotation patch, ``bind-phase=success`` and
the lock release are all inside it. Baseline from the same run: one GET of the node.

Prints ``plugin_allocate_p50_ms``, ``plugin_allocate_p99_ms`` and ``api_get_node_p99_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hami_common.k8s import NODES, PODS
from hami_e2e.build import BuildError, ensure_built
from hami_e2e.cluster import LocalCluster
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.kubelet.scheduling import gpu_pod, place
from hami_e2e.namespaces import create_namespace
from hami_e2e.nodes import NodePool, create_nodes

NS = "bench-plugin"


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(cluster: LocalCluster, samples: int, warmup: int) -> tuple[list[float], list[float]]:
    async with cluster.client() as kube:
        [node_name] = await create_nodes(kube, [NodePool(name="bench-gpu", devices_per_node=4)])
        await create_namespace(kube, NS)
        baseline = []
        for _ in range(samples):
            start = time.perf_counter()
            await kube.get(NODES, node_name)
            baseline.append(time.perf_counter() - start)
    allocate: list[float] = []
    async with GpuNode(cluster, node_name) as node:
        await node.wait_registered(60)
        assert node.client is not None
        uuids = [d["uuid"] for d in node.spec["devices"]]
        for i in range(warmup + samples):
            name = f"p-{i:05d}"
            devices = f"{uuids[i % len(uuids)]},NVIDIA,1000,10:;"
            await place(node.client, NS, gpu_pod(name, [1]), node_name, devices)
            result = await node.kubelet.wait_allocation(NS, name, "c0", within=60)
            if result.error is not None:
                raise RuntimeError(f"pod {name}: Allocate failed: {result.error}")
            if i >= warmup:
                allocate.append(result.seconds)
            await node.client.delete(PODS, name, namespace=NS, grace_period_seconds=0)
    return allocate, baseline


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-plugin", description=__doc__)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        ensure_built()
    except BuildError as exc:
        print(f"bench-plugin: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hami-bench-") as tmp, LocalCluster(Path(tmp)) as cl:
        allocate, baseline = asyncio.run(run(cl, args.samples, args.warmup))
        cl.check()
    ms = 1000.0
    print(f"# {len(allocate)} Allocate calls, {len(baseline)} node GETs")
    print(f"plugin_allocate_p50_ms={statistics.median(allocate) * ms:.1f} ms")
    print(f"plugin_allocate_p99_ms={percentile(allocate, 0.99) * ms:.1f} ms")
    print(f"api_get_node_p99_ms={percentile(baseline, 0.99) * ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
