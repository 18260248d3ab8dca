"""`./just demo`: the whole system on a local cluster, with HAMi's example pods.

Starts the control plane built from upstream, the webhook (called by the real kube-apiserver
over TLS), the extender (called by the real kube-scheduler), and on each fake node its vendor's
device plugin (fake backend: NVIDIA GPUs, Huawei Ascend 910B3 NPUs, Cambricon MLUs) with
kubelet's device-manager stand-in. Then it creates pods shaped like HAMi's examples, one per
vendor at least, and prints, for each, where it landed, the devices in its HAMi annotation, the
env (or device nodes) the plugin's Allocate gave its container, and the extender's explanation.
Every pod has an expected outcome (running with given devices, or pending for a given reason);
the last line says how many pods ran, and the exit status is 1 when any outcome differs from its
expectation. Each GPU node also runs its monitor, its containers run real GPU work (the hook on
the fake driver), and a Prometheus scrapes the extender and the monitors: the demo prints where
to open the web UI, the dashboard's Prometheus and the traces. Everything is stopped at the end.
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
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hami_rustcore as core
from hami_common.k8s import PODS, KubeClient
from hami_common.telemetry import pod_trace_id

from hami_e2e.jaeger import JaegerError, JaegerQuery, Trace, trace_api_url, trace_url
from hami_e2e.kubelet.node import GpuNode
from hami_e2e.namespaces import create_namespace
from hami_e2e.nodes import NodePool, create_nodes
from hami_e2e.observe import where_to_look
from hami_e2e.prometheus import start_for_stack
from hami_e2e.stack import WEBHOOK_NAMESPACE_LABEL, HamiStack, running_stack

Json = dict[str, Any]
NAMESPACE = "demo"
ALLOCATED = "hami.io/vgpu-devices-allocated"
ENV_SHOWN = ("NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_MEMORY_LIMIT_0", "CUDA_DEVICE_MEMORY_LIMIT_1",
             "CUDA_DEVICE_SM_LIMIT", "CUDA_DEVICE_MEMORY_SHARED_CACHE", "ASCEND_VISIBLE_DEVICES",
             "ASCEND_VNPU_SPECS")  # fmt: skip
# Per vendor: the allocated annotation, the node label its pods select (HAMi's charts label
# each vendor's nodes), the container's name and image.
VENDORS = {
    "nvidia": (ALLOCATED, {"gpu": "on"}, "cuda", "nvidia/cuda:12.4.0-base-ubuntu22.04"),
    "ascend": ("hami.io/Ascend910B3-devices-allocated", {"ascend": "on"}, "npu",
               "ascendhub.huawei.com/public-ascendhub/ascend-pytorch:24.0.0"),
    "cambricon": ("hami.io/cambricon-mlu-devices-allocated", {"mlu": "on"}, "mlu",
                  "cambricon/pytorch:v1.17"),
}  # fmt: skip
# Sized so that every example runs whatever order the pods are placed in (kube-scheduler's queue
# and the extender's preference for idle nodes decide it): the three that share touch at most four
# of the eight devices, so a device nobody shares is always left for the exclusive one.
POOL = NodePool(name="demo-gpu", count=2, devices_per_node=4, device_memory_mib=16384,
                model="NVIDIA-Tesla-T4")  # fmt: skip
NPU_POOL = NodePool(name="demo-npu", count=1, devices_per_node=4, vendor="ascend", model="910B3",
                    device_memory_mib=65536, labels={"ascend": "on"})  # fmt: skip
MLU_POOL = NodePool(name="demo-mlu", count=1, devices_per_node=2, vendor="cambricon",
                    model="MLU370-X8", device_memory_mib=24576, labels={"mlu": "on"})  # fmt: skip
POOLS = (POOL, NPU_POOL, MLU_POOL)
SETTLE_SECONDS = 120.0
TRACE_SECONDS = 30.0
PLACED_SPANS = ("admission", "filter", "bind", "Allocate")
PENDING_SPANS = ("admission", "filter")


@dataclass(frozen=True)
class Example:
    """One of HAMi's example pods and what the demo expects of it: ``devices`` (MiB, cores per
    device) when it must run, else the failure ``reason`` every node must give."""

    name: str
    limits: Mapping[str, str]
    what: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    devices: tuple[tuple[int, int], ...] = ()
    reason: str = ""
    vendor: str = "nvidia"

    @property
    def allocated(self) -> str:
        """The vendor's allocated annotation (HAMi's key)."""
        return VENDORS[self.vendor][0]

    @property
    def container(self) -> str:
        return VENDORS[self.vendor][2]

    @property
    def expected(self) -> str:
        if self.reason:
            return f"pending: {self.reason}"
        shown = ", ".join(f"{mem} MiB {cores}%" for mem, cores in self.devices)
        return f"running with {shown}"


EXAMPLES: tuple[Example, ...] = (
    Example("one-gpu", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000",
                        "nvidia.com/gpucores": "30"},
            "1 GPU, 3000 MiB, 30% of the SMs", devices=((3000, 30),)),
    Example("two-gpus", {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "4000"},
            "2 GPUs with 4000 MiB each", devices=((4000, 0), (4000, 0))),
    Example("half-memory", {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
            "half of a device's memory", devices=((8192, 0),)),
    Example("exclusive", {"nvidia.com/gpu": "1"},
            "a whole device (the webhook adds 100% cores)", devices=((16384, 100),)),
    Example("a100-only", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"},
            "a device type nobody has: stays Pending",
            annotations={"nvidia.com/use-gputype": "A100"}, reason="CardTypeMismatch"),
    Example("too-big", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "999999"},
            "more memory than any device: stays Pending", reason="CardInsufficientMemory"),
    Example("ascend-vnpu", {"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "2000"},
            "an Ascend 910B3 vNPU: 2000 MiB rounds up to the vir05_1c_16g template",
            devices=((16384, 0),), vendor="ascend"),
    Example("cambricon-smlu", {"cambricon.com/vmlu": "1", "cambricon.com/mlu.smlu.vmemory": "20",
                               "cambricon.com/mlu.smlu.vcore": "10"},
            "a Cambricon sMLU: 10% of an MLU's cores and 20 x 256 MiB",
            devices=((5120, 10),), vendor="cambricon"),
)  # fmt: skip


@dataclass
class Outcome:
    """What happened to one example pod, as the demo prints and checks it."""

    example: Example
    pod: Json
    env: Mapping[str, str] | None
    explanation: Json
    problems: list[str] = field(default_factory=list)
    device_nodes: list[str] = field(default_factory=list)
    """The device nodes the plugin's Allocate gave the container (Cambricon's sMLU)."""
    spans: list[str] = field(default_factory=list)
    """The names of the spans of the pod's trace that Jaeger holds, in the placement's order."""

    @property
    def phase(self) -> str:
        return str((self.pod.get("status") or {}).get("phase") or "Unknown")

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.pod["metadata"].get("annotations") or {}

    def devices(self) -> list[core.AllocDevice]:
        value = self.annotations.get(self.example.allocated)
        return [d for ctr in core.decode_pod_devices(value) for d in ctr] if value else []

    def last_filter(self) -> Json:
        """The extender's latest filter decision about the pod ({} when it recorded none)."""
        steps = self.explanation.get("steps") or []
        return next((s for s in reversed(steps) if s.get("step") == "filter"), {})

    def trace_id(self) -> str:
        """The trace every step of the placement joined (from the pod's trace context)."""
        return pod_trace_id(self.pod) or ""


def pod(example: Example) -> Json:
    _, selector, container, image = VENDORS[example.vendor]
    return {
        "metadata": {"name": example.name, "annotations": dict(example.annotations)},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "nodeSelector": dict(selector),
            "containers": [{"name": container, "image": image,
                            "resources": {"limits": dict(example.limits)}}],
        },
    }  # fmt: skip


async def namespace(kube: KubeClient) -> None:
    await create_namespace(kube, NAMESPACE, {WEBHOOK_NAMESPACE_LABEL: "true"})


def _unschedulable(p: Json) -> bool:
    conds = (p.get("status") or {}).get("conditions") or []
    return any(c.get("reason") == "Unschedulable" for c in conds)


async def settle(kube: KubeClient, names: list[str], within: float) -> dict[str, Json]:
    """Waits until every pod is Running or has been judged unschedulable (or time is up)."""
    deadline = time.monotonic() + within
    while True:
        pods = {n: await kube.get(PODS, n, namespace=NAMESPACE) for n in names}
        settled = all(
            (p.get("status") or {}).get("phase") == "Running" or _unschedulable(p)
            for p in pods.values()
        )
        if settled or time.monotonic() > deadline:
            return pods
        await asyncio.sleep(0.5)


def check(outcome: Outcome) -> list[str]:
    """How the outcome differs from the example's expectation (empty when it matches)."""
    ex, problems = outcome.example, []
    if ex.reason:
        if outcome.phase != "Pending" or outcome.pod["spec"].get("nodeName"):
            problems.append(f"expected to stay pending, but it is {outcome.phase} "
                            f"on {outcome.pod['spec'].get('nodeName')}")  # fmt: skip
        if not set(PENDING_SPANS) <= set(outcome.spans):
            problems.append(f"expected the trace to hold {', '.join(PENDING_SPANS)}, Jaeger has "
                            f"{', '.join(outcome.spans) or 'nothing'}")  # fmt: skip
        reasons = outcome.last_filter().get("reasons") or {}
        if set(reasons) != {ex.reason}:
            recorded = json.dumps(reasons, sort_keys=True) if reasons else "nothing"
            problems.append(
                f"expected every node to fail with {ex.reason}, the extender recorded {recorded}"
            )
        return problems
    if outcome.phase != "Running":
        problems.append(f"expected Running, but it is {outcome.phase}")
    if not set(PLACED_SPANS) <= set(outcome.spans):
        problems.append(f"expected the trace to hold {', '.join(PLACED_SPANS)}, Jaeger has "
                        f"{', '.join(outcome.spans) or 'nothing'}")  # fmt: skip
    got = [(d.usedmem, d.usedcores) for d in outcome.devices()]
    if got != list(ex.devices):
        problems.append(f"expected devices {list(ex.devices)}, got {got}")
    if outcome.env is None:
        problems.append("the device plugin's Allocate answered nothing for its container")
    return problems


def show(outcome: Outcome, traces: str | None) -> None:
    ex, p = outcome.example, outcome.pod
    spec, annotations = p["spec"], outcome.annotations
    print(f"\n== {ex.name}: {ex.what}")
    print(f"   outcome: {outcome.phase} on node {spec.get('nodeName') or '-'} "
          f"(expected: {ex.expected}; scheduler {spec.get('schedulerName')})")  # fmt: skip
    limits = spec["containers"][0]["resources"]["limits"]
    print(f"   limits after the webhook: {json.dumps(limits, sort_keys=True)}")
    if ex.allocated in annotations:
        print(f"   devices ({ex.allocated}): {annotations[ex.allocated]}")
    for key in ENV_SHOWN:
        if outcome.env and key in outcome.env:
            print(f"   env {key}={outcome.env[key]}")
    if outcome.device_nodes:
        print(f"   device nodes: {', '.join(outcome.device_nodes)}")
    print(f"   explain: {outcome.explanation.get('summary') or 'no decision recorded'}")
    failed = outcome.last_filter().get("failed")
    if ex.reason and failed:
        print(f"   reasons per node: {json.dumps(failed, sort_keys=True)}")
    trace_id = outcome.trace_id()
    if trace_id:
        print(f"   trace: {trace_id} ({span_counts(outcome.spans) or 'no spans in Jaeger'})")
        if traces:
            print(f"     {trace_url(traces, trace_id)}  (as JSON: "
                  f"{trace_api_url(traces, trace_id)})")  # fmt: skip
    for problem in outcome.problems:
        print(f"   UNEXPECTED: {problem}")


def span_counts(names: list[str]) -> str:
    """``admission, filter x3, bind``: each span name once, with its count when it repeats
    (kube-scheduler filters a pending pod again on every cluster change)."""
    counts = Counter(names)
    return ", ".join(n if counts[n] == 1 else f"{n} x{counts[n]}" for n in dict.fromkeys(names))


def summary(outcomes: list[Outcome]) -> str:
    running = sum(o.phase == "Running" for o in outcomes)
    pending = sum(o.phase == "Pending" and bool(o.last_filter().get("reasons")) for o in outcomes)
    line = f"demo: {running} of {len(outcomes)} pods running, {pending} pending with reasons"
    wrong = [o.example.name for o in outcomes if o.problems]
    if wrong:
        line += f"; {len(wrong)} not as expected: {', '.join(wrong)}"
    return line


async def admitted(gpu_nodes: list[GpuNode], name: str, within: float = 30.0) -> bool:
    """Whether a node's kubelet stand-in admitted the pod (every Allocate answered) in time."""
    deadline = time.monotonic() + within
    while not any((NAMESPACE, name) in g.kubelet.admitted for g in gpu_nodes):
        if time.monotonic() > deadline:
            return False  # the outcome then shows no env, and the check says so
        await asyncio.sleep(0.1)
    return True


async def collect(stack: HamiStack, gpu_nodes: list[GpuNode]) -> list[Outcome]:
    traces = stack.cluster.traces_url
    async with stack.client() as kube:
        for ex in EXAMPLES:
            await kube.create(PODS, pod(ex), namespace=NAMESPACE)
        pods = await settle(kube, [ex.name for ex in EXAMPLES], SETTLE_SECONDS)
    explain_url = f"{stack.extender_url()}/api/v1/explain/{NAMESPACE}"
    outcomes = []
    async with stack.extender_http(timeout=10) as http:
        for ex in EXAMPLES:
            env, nodes = None, []
            if (pods[ex.name].get("status") or {}).get("phase") == "Running":
                await admitted(gpu_nodes, ex.name)  # kwok runs it; kubelet's Allocate may lag
            for g in gpu_nodes:
                got = g.kubelet.admitted_allocation(NAMESPACE, ex.name, ex.container)
                if got is not None and got.response is not None:
                    env = dict(got.response.envs)
                    nodes = [d.container_path for d in got.response.devices]
            reply = await http.get(f"{explain_url}/{ex.name}")
            why = reply.json() if reply.status_code == 200 else {}
            outcome = Outcome(ex, pods[ex.name], env, why, device_nodes=nodes)
            if traces:
                outcome.spans = await asyncio.to_thread(trace_spans, traces, outcome)
            outcome.problems = check(outcome)
            outcomes.append(outcome)
    return outcomes


def trace_spans(traces: str, outcome: Outcome) -> list[str]:
    """The span names of the pod's trace in Jaeger, once it holds every step expected of the
    pod (the services export in batches), or whatever it holds after `TRACE_SECONDS`."""
    trace_id = outcome.trace_id()
    if not trace_id:
        return []
    wanted = PENDING_SPANS if outcome.example.reason else PLACED_SPANS
    query = JaegerQuery(traces)
    trace: Trace | None
    try:
        trace = query.wait_trace(trace_id, lambda t: t.has(*wanted), TRACE_SECONDS)
    except JaegerError:
        trace = query.trace(trace_id)
    if trace is None:
        return []
    rank = {name: i for i, name in enumerate(PLACED_SPANS)}
    return sorted((s.name for s in trace.spans), key=lambda n: (rank.get(n, len(rank)), n))


async def run(stack: HamiStack) -> list[Outcome]:
    async with stack.client() as kube:
        nodes = await create_nodes(kube, POOLS)
        await namespace(kube)
    gpus = {n for pool in POOLS if pool.vendor == "nvidia" for n in pool.node_names()}
    async with contextlib.AsyncExitStack() as agents:
        gpu_nodes = [await agents.enter_async_context(GpuNode(stack.cluster, n, observe=n in gpus))
                     for n in nodes]  # fmt: skip
        await asyncio.gather(*(g.wait_registered(60) for g in gpu_nodes))
        by_vendor = ", ".join(f"{g.node} ({g.agent.service})" for g in gpu_nodes)
        print(f"nodes registered by their device plugins: {by_vendor}")
        monitors = {g.node: g.monitor_port for g in gpu_nodes if g.monitor_port is not None}
        prometheus, process = await asyncio.to_thread(start_for_stack, stack, monitors)
        agents.callback(process.stop)
        print("while the demo runs (./just cluster-up keeps a stack up):")
        print("\n".join(f"  {line}" for line in where_to_look(stack, monitors, prometheus.url)))
        return await collect(stack, gpu_nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hami-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    args = parser.parse_args(argv)
    # gRPC (the kubelet stand-in) notes every process start at INFO; keep the demo's output clean.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hami-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"demo: logs in {workdir}")
    with running_stack(workdir) as stack:
        outcomes = asyncio.run(run(stack))
        for outcome in outcomes:
            show(outcome, stack.cluster.traces_url)
    print()
    print(summary(outcomes))
    return 1 if any(o.problems for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
