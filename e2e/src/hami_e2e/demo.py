"""`./just demo`: the whole system on a local cluster, with HAMi's example pods.

Starts the control plane built from upstream, the webhook (called by the real kube-apiserver
over TLS), the extender (called by the real kube-scheduler), and on each fake GPU node the NVIDIA
device plugin (fake backend) with kubelet's device-manager stand-in. Then it creates pods shaped
like HAMi's examples and prints, for each, where it landed, the devices in its HAMi annotation,
the env the plugin's Allocate gave its container, and the extender's explanation. Everything is
stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hami_common.k8s import NAMESPACES, PODS, SERVICE_ACCOUNTS, KubeClient, NotFound

from hami_e2e.kubelet.node import GpuNode
from hami_e2e.nodes import NodePool, create_nodes
from hami_e2e.stack import WEBHOOK_NAMESPACE_LABEL, HamiStack, running_stack

Json = dict[str, Any]
NAMESPACE = "demo"
ALLOCATED = "hami.io/vgpu-devices-allocated"
ENV_SHOWN = ("NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_MEMORY_LIMIT_0", "CUDA_DEVICE_MEMORY_LIMIT_1",
             "CUDA_DEVICE_SM_LIMIT", "CUDA_DEVICE_MEMORY_SHARED_CACHE")  # fmt: skip

# HAMi's examples: (name, limits, pod annotations, a line saying what it shows).
EXAMPLES: list[tuple[str, Mapping[str, str], Mapping[str, str], str]] = [
    ("one-gpu", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"},
     {}, "1 GPU, 3000 MiB, 30% of the SMs"),
    ("two-gpus", {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "4000"}, {},
     "2 GPUs with 4000 MiB each"),
    ("half-memory", {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"}, {},
     "half of a device's memory"),
    ("exclusive", {"nvidia.com/gpu": "1"}, {}, "a whole device (the webhook adds 100% cores)"),
    ("a100-only", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"},
     {"nvidia.com/use-gputype": "A100"}, "a device type nobody has: stays Pending"),
    ("too-big", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "999999"}, {},
     "more memory than any device: stays Pending"),
]  # fmt: skip


def pod(name: str, limits: Mapping[str, str], annotations: Mapping[str, str]) -> Json:
    return {
        "metadata": {"name": name, "annotations": dict(annotations)},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "cuda", "image": "nvidia/cuda:12.4.0-base-ubuntu22.04",
                            "resources": {"limits": dict(limits)}}],
        },
    }  # fmt: skip


async def namespace(kube: KubeClient) -> None:
    body = {"metadata": {"name": NAMESPACE, "labels": {WEBHOOK_NAMESPACE_LABEL: "true"}}}
    await kube.create(NAMESPACES, body)
    for _ in range(300):
        with contextlib.suppress(NotFound):
            await kube.get(SERVICE_ACCOUNTS, "default", namespace=NAMESPACE)
            return
        await asyncio.sleep(0.1)


async def settle(kube: KubeClient, names: list[str], within: float) -> dict[str, Json]:
    """Waits until every pod is Running or has been judged unschedulable."""
    deadline = time.monotonic() + within
    while True:
        pods = {n: await kube.get(PODS, n, namespace=NAMESPACE) for n in names}

        def settled(p: Json) -> bool:
            conds = p.get("status", {}).get("conditions") or []
            unschedulable = any(c.get("reason") == "Unschedulable" for c in conds)
            return p.get("status", {}).get("phase") == "Running" or unschedulable

        if all(settled(p) for p in pods.values()) or time.monotonic() > deadline:
            return pods
        await asyncio.sleep(0.5)


def show(name: str, what: str, p: Json, env: Mapping[str, str] | None, why: Json) -> None:
    meta, spec, status = p["metadata"], p["spec"], p.get("status", {})
    print(f"\n== {name}: {what}")
    print(f"   phase={status.get('phase')} node={spec.get('nodeName', '-')} "
          f"scheduler={spec.get('schedulerName')}")  # fmt: skip
    limits = spec["containers"][0]["resources"]["limits"]
    print(f"   limits after the webhook: {json.dumps(limits, sort_keys=True)}")
    if ALLOCATED in (meta.get("annotations") or {}):
        print(f"   {ALLOCATED}: {meta['annotations'][ALLOCATED]}")
    for key in ENV_SHOWN:
        if env and key in env:
            print(f"   env {key}={env[key]}")
    steps = why.get("steps") or [{}]
    summary = why.get("summary") or steps[-1].get("message") or json.dumps(steps[-1])
    print(f"   explain: {summary}")
    if steps[-1].get("failed"):  # the last step's (a bind step has none)
        print(f"   reasons per node: {json.dumps(steps[-1]['failed'], sort_keys=True)}")


async def run(stack: HamiStack) -> int:
    pool = NodePool(name="demo-gpu", count=2, devices_per_node=2, device_memory_mib=16384,
                    model="NVIDIA-Tesla-T4")  # fmt: skip
    async with stack.client() as kube:
        nodes = await create_nodes(kube, [pool])
        await namespace(kube)
        async with contextlib.AsyncExitStack() as gpus:
            gpu_nodes = [await gpus.enter_async_context(GpuNode(stack.cluster, n)) for n in nodes]
            for g in gpu_nodes:
                await g.wait_registered()
            print(f"nodes registered by the NVIDIA plugin: {', '.join(nodes)}")
            for name, limits, annotations, _ in EXAMPLES:
                await kube.create(PODS, pod(name, limits, annotations), namespace=NAMESPACE)
            pods = await settle(kube, [e[0] for e in EXAMPLES], within=120)
            explain_url = f"{stack.extender_url()}/api/v1/explain/{NAMESPACE}"
            async with stack.extender_http(timeout=10) as http:
                for name, _, _, what in EXAMPLES:
                    p = pods[name]
                    env = None
                    for g in gpu_nodes:
                        got = g.kubelet.allocations.get((NAMESPACE, name, "cuda"))
                        if got is not None and got.response is not None:
                            env = dict(got.response.envs)
                    reply = await http.get(f"{explain_url}/{name}")
                    show(name, what, p, env, reply.json())
    placed = sum(p["status"].get("phase") == "Running" for p in pods.values())
    print(f"\ndemo: {placed} of {len(pods)} pods running, the rest pending with their reasons")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    args = parser.parse_args(argv)
    # gRPC (the kubelet stand-in) notes every process start at INFO; keep the demo's output clean.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hami-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"demo: logs in {workdir}")
    with running_stack(workdir) as stack:
        return asyncio.run(run(stack))


if __name__ == "__main__":
    sys.exit(main())
