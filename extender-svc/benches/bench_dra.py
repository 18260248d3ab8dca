"""Fractional GPUs through DRA against whole-device DRA claims, plain pods and our extender path,
on one control plane, in one run (``./just bench-dra``).

NODES kwok nodes with DEVICES GPUs each. Every node's ResourceSlice is what the NVIDIA DRA
driver publishes (its own code: `slice_devices` and `hami_common.dra.slices`), written by this
process rather than by a driver process per node, which two cores could not run at scale; kwok
plays the pods' lifecycle. The client rates of kube-scheduler and kube-controller-manager are
raised (QPS and burst 5000, as upstream's scheduler_perf runs; the defaults, 50 and 20, cap
the claim writes a DRA pod adds: shared/reference/dra.md §2) for every run alike. In order, PODS
pods each of:

- plain pods (``sched_plain_pods_per_s``, bench_sched's baseline);
- GPU pods through the extender, as bench_sched runs them (``sched_extender_pods_per_s``; skip
  with ``--no-extender``);
- DRA pods with a claim template of one whole GPU (``dra_exclusive_pods_per_s``);
- DRA pods with a claim template of MEMORY and CORES of one GPU, consumable capacity
  (``dra_fractional_pods_per_s``).

Each rate runs from the first create to every pod Running (bench_sched's `schedule`). After each
DRA run, outside the clock, every claim is checked against its device (no over-commit of
memory, cores or shares across ``consumedCapacity``) and prepared by the driver's own prepare
(one driver per node, in this process): both counts are printed and must be 0. The DRA pods
are then deleted and the next run waits until their claims are gone.
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

import hami_rustcore
from bench_sched import (
    LIMITS,
    _wait_ready,
    api_writes,
    cpu_line,
    cpu_seconds,
    cpu_used,
    schedule,
    writes_line,
    writes_per_pod,
)
from hami_common.deviceplugin.testing import FakeBackend
from hami_common.dra import slices
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.checkpoint import Checkpoint
from hami_common.dra.server import PrepareError
from hami_common.k8s import (
    NAMESPACES,
    NODES,
    RESOURCE_CLAIM_TEMPLATES,
    RESOURCE_CLAIMS,
    KubeClient,
    NotFound,
)
from hami_e2e.bench import plain_pod
from hami_e2e.build import ensure_built
from hami_e2e.cluster import LocalCluster
from hami_e2e.components import free_port
from hami_e2e.dra import DRIVER, claim_pod, claim_template, ensure_device_class
from hami_e2e.nodes import NodePool, create_nodes
from hami_extender.testing import REGISTER, FakePlugin, extender_config, gpu_pod
from hami_extender.testing import register_annotation as register
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.dra.devices import capacity, slice_devices
from hami_plugin_nvidia.dra.driver import NvidiaDraDriver
from hami_plugin_nvidia.policy import NvidiaPolicy

Json = dict[str, Any]
RATES = 5000
MIB = 1 << 20


async def publish_slices(kube: KubeClient, pool: NodePool, names: list[str],
                         options: NvidiaOptions) -> None:  # fmt: skip
    sem = asyncio.Semaphore(16)

    async def one(node: str) -> None:
        devices = FakeBackend({"devices": pool.devices(node)}).discover()
        async with sem:
            await slices.publish(kube, node, DRIVER, slice_devices(devices, options))

    await asyncio.gather(*(one(n) for n in names))


async def check_and_prepare(
    kube: KubeClient, ns: str, pool: NodePool, options: NvidiaOptions, scratch: Path
) -> tuple[int, int]:
    """(over-committed devices, prepare errors) of the run's claims."""
    claims = (await kube.list(RESOURCE_CLAIMS, namespace=ns))["items"]
    used: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for claim in claims:
        for r in claim["status"]["allocation"]["devices"]["results"]:
            c = r.get("consumedCapacity") or {}
            u = used[(r["pool"], r["device"])]
            u[0] += hami_rustcore.quantity_value(c.get("memory", "0"))
            u[1] += hami_rustcore.quantity_value(c.get("cores", "0"))
            u[2] += hami_rustcore.quantity_value(c.get("shares", "1"))
    some = FakeBackend({"devices": pool.devices("x")}).discover()[0]
    full = capacity(some, options)
    over = sum(
        1 for m, c, s in used.values()
        if m > full.memory_mib * MIB or c > full.cores or s > options.split_count
    )  # fmt: skip
    drivers: dict[str, NvidiaDraDriver] = {}
    errors = 0
    for claim in claims:
        node = claim["status"]["allocation"]["devices"]["results"][0]["pool"]
        if node not in drivers:
            root = scratch / ns / node
            policy = NvidiaPolicy(options, hook_path=root / "hook", lock_dir=root / "lock")
            devices = FakeBackend({"devices": pool.devices(node)}).discover()
            drivers[node] = NvidiaDraDriver(kube, node, policy, devices,
                                            Checkpoint(root / "checkpoint.json"),
                                            cdi_dir=root / "cdi")  # fmt: skip
        meta = claim["metadata"]
        try:
            await drivers[node].prepare(dra.Claim(namespace=ns, name=meta["name"], uid=meta["uid"]))
        except PrepareError as exc:
            errors += 1
            print(f"# prepare failed: {exc}")
    return over, errors


async def delete_namespace(kube: KubeClient, ns: str, within: float = 300) -> None:
    """Deletes the run's namespace and waits until it is gone (its claims deallocated)."""
    await kube.delete(NAMESPACES, ns)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            await kube.get(NAMESPACES, ns)
        except NotFound:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"namespace {ns} not deleted in {within}s")


async def dra_run(
    kube: KubeClient, ns: str, template: Json, *, args: argparse.Namespace, pool: NodePool,
    options: NvidiaOptions, scratch: Path,
) -> tuple[float, int, int]:  # fmt: skip
    async def setup() -> None:
        await kube.create(RESOURCE_CLAIM_TEMPLATES, template, namespace=ns)

    name = template["metadata"]["name"]
    rate = await schedule(kube, ns, lambda i: claim_pod(f"d-{i:05d}", name), args.pods,
                          args.concurrency, setup=setup)  # fmt: skip
    over, errors = await check_and_prepare(kube, ns, pool, options, scratch)
    await delete_namespace(kube, ns)
    return rate, over, errors


async def measure(
    cluster: LocalCluster, args: argparse.Namespace, scratch: Path
) -> dict[str, float]:
    out: dict[str, float] = {}
    options = NvidiaOptions(split_count=10)
    async with cluster.client() as kube:
        pool = NodePool(name="bench", count=args.nodes, devices_per_node=args.devices)
        names = await create_nodes(kube, [pool], wait_ready=120)
        await ensure_device_class(kube)
        await publish_slices(kube, pool, names, options)
        for node in names:
            value = register(pool.devices(node))
            await kube.patch(NODES, node, {"metadata": {"annotations": {REGISTER: value}}})
        t0, w0 = cpu_seconds(), await api_writes(kube)
        out["sched_plain_pods_per_s"] = await schedule(
            kube, "bench-plain", lambda i: plain_pod(f"p-{i:05d}"), args.pods, args.concurrency
        )
        t1, w1 = cpu_seconds(), await api_writes(kube)
        print(cpu_line("plain", cpu_used(t0, t1, args.pods)))
        print(writes_line("plain", writes_per_pod(w0, w1, args.pods)))
        if args.extender:
            plugin_kube = cluster.client(max_connections=8)
            async with plugin_kube, FakePlugin(plugin_kube, "bench-gpu").running():
                out["sched_extender_pods_per_s"] = await schedule(
                    kube, "bench-gpu", lambda i: gpu_pod(f"g-{i:05d}", LIMITS), args.pods,
                    args.concurrency,
                )  # fmt: skip
            t2, w2 = cpu_seconds(), await api_writes(kube)
            print(cpu_line("extender", cpu_used(t1, t2, args.pods)))
            print(writes_line("extender", writes_per_pod(w1, w2, args.pods)))
            t1, w1 = t2, w2
        runs = [
            ("exclusive", claim_template("whole")),
            ("fractional", claim_template("share", memory=args.memory, cores=args.cores)),
        ]
        for label, template in runs:
            rate, over, errors = await dra_run(
                kube,
                f"bench-dra-{label}",
                template,
                args=args,
                pool=pool,
                options=options,
                scratch=scratch,
            )
            t2, w2 = cpu_seconds(), await api_writes(kube)
            print(cpu_line(f"dra {label} (with its checks and cleanup)",
                           cpu_used(t1, t2, args.pods)))  # fmt: skip
            print(writes_line(f"dra {label} (with its cleanup)", writes_per_pod(w1, w2, args.pods)))
            t1, w1 = t2, w2
            out[f"dra_{label}_pods_per_s"] = rate
            out[f"dra_{label}_overcommitted_devices"] = over
            out[f"dra_{label}_prepare_errors"] = errors
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench-dra", description=__doc__)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--memory", default="1000Mi", help="a fractional claim's memory")
    parser.add_argument("--cores", default="5", help="a fractional claim's cores (percent)")
    parser.add_argument("--extender", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the extender path on the same nodes")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="keep the cluster's and extender's logs here")
    args = parser.parse_args()
    if args.pods > args.nodes * args.devices:
        parser.error(f"--pods {args.pods}: whole-device claims need as many GPUs "
                     f"(--nodes x --devices = {args.nodes * args.devices})")  # fmt: skip
    ensure_built()
    port = free_port()
    extra: Json = {"clientConnection": {"qps": RATES, "burst": RATES}}
    if args.extender:
        extra["extenders"] = [extender_config(f"http://127.0.0.1:{port}")]
    kcm = (f"--kube-api-qps={RATES}", f"--kube-api-burst={RATES}")
    with tempfile.TemporaryDirectory(prefix="hami-bench-dra-") as scratch:
        tmp = Path(args.keep or scratch)
        cluster = LocalCluster(tmp / "cluster", scheduler_extra=extra,
                               controller_manager_extra=kcm)  # fmt: skip
        cluster.start()
        proc: subprocess.Popen[bytes] | None = None
        try:
            if args.extender:
                with (tmp / "extender.log").open("wb") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "hami_extender", "--kubeconfig",
                         str(cluster.kubeconfig), "--port", str(port),
                         "--scheduler-name", "default-scheduler"],
                        stdout=log, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                _wait_ready(f"http://127.0.0.1:{port}/readyz", proc, 60)
            figures = asyncio.run(measure(cluster, args, tmp / "nodes"))
            cluster.check()
        finally:
            if proc is not None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
            cluster.stop()
    plain = figures["sched_plain_pods_per_s"]
    frac, excl = figures["dra_fractional_pods_per_s"], figures["dra_exclusive_pods_per_s"]
    print(f"dra_fractional_pods_per_s={frac:.1f} pods/s")
    print(f"dra_exclusive_pods_per_s={excl:.1f} pods/s")
    print(f"sched_plain_pods_per_s={plain:.1f} pods/s")
    if "sched_extender_pods_per_s" in figures:
        ext = figures["sched_extender_pods_per_s"]
        print(f"sched_extender_pods_per_s={ext:.1f} pods/s")
        print(f"dra_fractional_vs_extender={frac / ext:.2f} (target > 1)")
    print(f"dra_fractional_vs_exclusive={frac / excl:.2f} (target >= 0.8)")
    print(f"dra_fractional_vs_plain={frac / plain:.2f}")
    for label in ("exclusive", "fractional"):
        print(f"dra_{label}_overcommitted_devices="
              f"{figures[f'dra_{label}_overcommitted_devices']:.0f} devices")  # fmt: skip
        print(f"dra_{label}_prepare_errors={figures[f'dra_{label}_prepare_errors']:.0f} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
