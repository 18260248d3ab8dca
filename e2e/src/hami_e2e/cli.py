"""`./just cluster-up` / `./just cluster-down`: the whole hami-rs stack for people, left running.

``up`` starts, in ``<repo>/.cache/cluster`` (or ``--workdir``): the control plane built from
upstream with Jaeger, the webhook (registered for every namespace but kube-system and those labelled
``hami.io/webhook=ignore``, as HAMi's chart does), the extender (which kube-scheduler's
``hami-scheduler`` profile calls over TLS; it serves the web UI), and fake nodes behind kubelet's
device-manager stand-in: GPU nodes, each with the NVIDIA device plugin (fake backend) and its node
monitor (the stand-in also runs each allocated container's GPU work with the real hook), and, when
asked for, Huawei Ascend 910B3 and Cambricon MLU370 nodes with their vendors' plugins (fake backends
too), sized as the demo's; each a process of its own. ``--dra``: the GPU nodes are served by the
NVIDIA DRA driver instead (its process per node, the DeviceClass, kubelet's DRA manager stand-in),
and the webhook runs with ``--dra``, so the same example pod becomes a ResourceClaim that
kube-scheduler allocates. A Prometheus scrapes the extender and the monitors. Every process is
detached (its own process group) and recorded in ``state.json`` by who it is (pid, start time and
boot, see `ProcessIdentity`); then it prints how to use the stack. ``down`` stops every recorded
process group whose leader is still provably that process and removes the state: a stale state file
(after a reboot, or a process that already exited and whose pid went to another program) never gets
an unrelated process signalled.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hami_common.k8s import ApiError

from hami_e2e.build import layout
from hami_e2e.cluster import ClusterError
from hami_e2e.demo import MLU_POOL, NPU_POOL
from hami_e2e.dra import start_dra_agents
from hami_e2e.kubelet.node import NODE_FOLDER_PREFIX, NODE_FOLDERS, NodeAgents, start_agents
from hami_e2e.nodes import NodePool, create_nodes
from hami_e2e.observe import where_to_look
from hami_e2e.paths import repo_root
from hami_e2e.process import ProcessError, ProcessIdentity, detach, kill_group
from hami_e2e.prometheus import PrometheusError, start_for_stack
from hami_e2e.stack import ALL_NAMESPACES, HamiStack, start_stack

SPLIT_COUNT = 10
EXAMPLES = repo_root() / "e2e" / "examples"
MAX_NODES = 50


@dataclasses.dataclass(frozen=True)
class Vendor:
    """How `up` names a vendor's nodes, and the example pod it prints for them."""

    nodes: str  # "GPU node"
    plugin: str  # "the NVIDIA device plugin"
    pod: str  # the example's pod name (e2e/examples/<pod>.yaml)

    @property
    def example(self) -> Path:
        return EXAMPLES / f"{self.pod}.yaml"


VENDORS = {
    "nvidia": Vendor("GPU node", "the NVIDIA device plugin", "gpu-pod"),
    "nvidia-dra": Vendor("GPU node", "the NVIDIA DRA driver", "gpu-pod"),
    "ascend": Vendor("Huawei Ascend node", "the Ascend device plugin", "ascend-pod"),
    "cambricon": Vendor("Cambricon MLU node", "the Cambricon device plugin", "cambricon-pod"),
}


def pools(gpu_nodes: int, devices_per_node: int, npu_nodes: int, mlu_nodes: int) -> list[NodePool]:
    """The node pools `up` brings: GPU nodes (Tesla T4s), and the demo's Ascend 910B3 and
    Cambricon MLU370 nodes (labelled ``ascend=on`` and ``mlu=on``, as HAMi's charts label them);
    pools of no node left out."""
    gpu = NodePool(name="gpu", count=gpu_nodes, devices_per_node=devices_per_node,
                   model="NVIDIA-Tesla-T4", device_memory_mib=16384)  # fmt: skip
    npu = dataclasses.replace(NPU_POOL, name="npu", count=npu_nodes)
    mlu = dataclasses.replace(MLU_POOL, name="mlu", count=mlu_nodes)
    return [p for p in (gpu, npu, mlu) if p.count > 0]


def _state(workdir: Path) -> Path:
    return workdir / "state.json"


def _vendor(pool: NodePool, dra: bool) -> Vendor:
    return VENDORS["nvidia-dra" if dra and pool.vendor == "nvidia" else pool.vendor]


async def _start_nodes(stack: HamiStack, node_pools: list[NodePool]) -> NodeAgents:
    """The pools' fake nodes, each with its vendor's device plugin, and kubelet's stand-in,
    registered; with ``stack.dra``, the GPU nodes with the DRA driver and kubelet's DRA manager
    stand-in instead."""
    async with stack.client() as kube:
        names = await create_nodes(kube, node_pools)
        dra = {n for p in node_pools if stack.dra and p.vendor == "nvidia" for n in p.node_names()}
        plugins = [n for n in names if n not in dra]
        agents = NodeAgents([])
        try:
            if plugins:
                agents = await start_agents(stack.cluster, kube, plugins, split_count=SPLIT_COUNT,
                                            detachable=True, observe=True)  # fmt: skip
            if dra:
                more = await start_dra_agents(stack.cluster, kube, sorted(dra),
                                              split_count=SPLIT_COUNT, detachable=True)  # fmt: skip
                agents.nodes += more.nodes
                agents.processes += more.processes
                agents.folders += more.folders
        except BaseException:
            agents.stop()
            raise
        return agents


def up(workdir: Path, node_pools: list[NodePool], dra: bool = False) -> int:
    if _state(workdir).exists():
        print(
            f"a cluster is already recorded in {_state(workdir)}; run `./just cluster-down` first"
        )
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    began = time.monotonic()
    try:
        stack = start_stack(workdir, detachable=True, namespace_selector=ALL_NAMESPACES,
                            dra=dra)  # fmt: skip
    except (ClusterError, ProcessError, RuntimeError, TimeoutError) as exc:
        print(f"cluster-up failed: {exc}", file=sys.stderr)
        return 1
    try:
        agents = asyncio.run(_start_nodes(stack, node_pools))
    except (ProcessError, TimeoutError, FileNotFoundError, ApiError) as exc:
        print(f"cluster-up failed: {exc}", file=sys.stderr)
        stack.stop()
        stack.cluster.stop()
        return 1
    try:
        prometheus, prom_process = start_for_stack(stack, agents.monitors, detachable=True)
    except (PrometheusError, ProcessError) as exc:
        print(f"cluster-up failed: {exc}", file=sys.stderr)
        agents.stop()
        stack.stop()
        stack.cluster.stop()
        return 1
    processes = [*stack.cluster.processes, *(s.process for s in stack.services),
                 *agents.processes, prom_process]  # fmt: skip
    recorded: dict[str, dict[str, int | str]] = {}
    for proc in processes:
        identity = ProcessIdentity.of(proc.pid) if proc.pid is not None else None
        if identity is not None:
            recorded[proc.name] = identity.as_dict()
        detach(proc)
    state = {"processes": recorded, "folders": [str(f) for f in agents.folders]}
    _state(workdir).write_text(json.dumps(state, indent=2) + "\n")
    _explain_use(stack, node_pools, time.monotonic() - began)
    print("\n".join(where_to_look(stack, agents.monitors, prometheus.url, traces_line=False)))
    print("stop it with: ./just cluster-down")
    return 0


def _pool_line(pool: NodePool, dra: bool) -> str:
    vendor = _vendor(pool, dra)
    plural = "" if pool.count == 1 else "s"
    return (f"{pool.count} fake {vendor.nodes}{plural} ({', '.join(pool.node_names())}: "
            f"{pool.devices_per_node} x {pool.model}, {pool.device_memory_mib} MiB each) with "
            f"{vendor.plugin}")  # fmt: skip


def _explain_use(stack: HamiStack, node_pools: list[NodePool], seconds: float) -> None:
    cluster = stack.cluster
    nodes = "; ".join(_pool_line(p, stack.dra) for p in node_pools)
    print(f"hami-rs is up in {seconds:.1f}s: the control plane, Jaeger, the webhook, the "
          f"extender and {nodes}")  # fmt: skip
    vendors = [_vendor(p, stack.dra) for p in node_pools]
    print(f"logs: {cluster.logs} (control plane, plugins, kubelet stand-ins), {stack.workdir} "
          "(webhook, extender)")  # fmt: skip
    print("point kubectl at it:")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  alias kubectl={layout().binary('kubectl')}")
    print("create an example pod for each kind of node (the webhook sees every namespace but "
          "kube-system and those labelled hami.io/webhook=ignore):")  # fmt: skip
    for vendor in vendors:
        print(f"  kubectl apply -f {vendor.example}")
    print("  kubectl get pods -o wide")
    print("why a pod is pending, or where it went and with which devices:")
    for vendor in (v for v in vendors if v is not VENDORS["nvidia-dra"]):
        print(f"  curl -s --cacert {stack.extender_tls.ca_file} "
              f"{stack.extender_url()}/api/v1/explain/default/{vendor.pod}")  # fmt: skip
    if VENDORS["nvidia-dra"] in vendors:
        print("  kubectl get resourceclaims -o yaml  (the DRA pods' claims: kube-scheduler's "
              "allocation, device and consumed capacity)")  # fmt: skip
        print("what the DRA driver prepared for each claim (kubelet stand-in's log):")
        print(f"  grep NodePrepareResources {cluster.logs}/kubelet-*.log")
    if any(v is not VENDORS["nvidia-dra"] for v in vendors):
        print("what the device plugin's Allocate gave each container (kubelet stand-in's log):")
        print(f"  grep Allocate {cluster.logs}/kubelet-*.log")
    if cluster.traces_url is not None:
        print(f"traces (Jaeger): {cluster.traces_url}")
        print(f"  export OTEL_EXPORTER_OTLP_ENDPOINT={cluster.otlp_endpoint}")
        print(f"  a pod's trace: {cluster.traces_url}/api/v3/traces/<trace id> (the id is in "
              "the pod's hami.io/trace-context annotation)")  # fmt: skip


def down(workdir: Path) -> int:
    state = _state(workdir)
    if not state.exists():
        print(f"no cluster recorded in {state}")
        return 0
    try:
        doc = json.loads(state.read_text())
        recorded, folders = doc.get("processes"), doc.get("folders") or []
    except (OSError, ValueError, AttributeError):
        recorded, folders = None, []
    if not isinstance(recorded, dict):
        print(f"{state} records no process identities (written by an older version, or damaged): "
              "nothing was signalled; stop the cluster's processes by hand, then remove it",
              file=sys.stderr)  # fmt: skip
        return 1
    for name, data in reversed(list(recorded.items())):
        identity = ProcessIdentity.from_dict(data)
        if identity is None:
            print(f"{name}: not a process identity in {state}; not signalled")
        elif kill_group(identity):
            print(f"stopped {name} (process group {identity.pid})")
        else:
            print(f"{name} (pid {identity.pid}) had already exited; its pid was not signalled")
    for folder in folders if isinstance(folders, list) else []:
        path = Path(str(folder))
        if path.parent == NODE_FOLDERS and path.name.startswith(NODE_FOLDER_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
    state.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hami-e2e-cluster", description=__doc__)
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--workdir", type=Path, default=repo_root() / ".cache" / "cluster")
    parser.add_argument("--gpu-nodes", type=int, default=2, help="fake GPU nodes (up)")
    parser.add_argument("--devices-per-node", type=int, default=4, help="GPUs per node (up)")
    parser.add_argument("--npu-nodes", type=int, default=0,
                        help="fake Huawei Ascend nodes, 4 x 910B3 each (up)")  # fmt: skip
    parser.add_argument("--mlu-nodes", type=int, default=0,
                        help="fake Cambricon nodes, 2 x MLU370-X8 each (up)")  # fmt: skip
    parser.add_argument("--dra", action="store_true",
                        help="GPU nodes served by the NVIDIA DRA driver, the webhook with --dra "
                        "(up)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.action == "down":
        return down(args.workdir)
    for flag in ("gpu_nodes", "npu_nodes", "mlu_nodes"):
        if not 0 <= getattr(args, flag) <= MAX_NODES:
            parser.error(f"--{flag.replace('_', '-')} is 0..{MAX_NODES}, not {getattr(args, flag)}")
    if not 1 <= args.devices_per_node <= 16:
        parser.error(f"--devices-per-node is 1..16, not {args.devices_per_node}")
    node_pools = pools(args.gpu_nodes, args.devices_per_node, args.npu_nodes, args.mlu_nodes)
    if not node_pools:
        parser.error("no node asked for: give --gpu-nodes, --npu-nodes or --mlu-nodes above 0")
    return up(args.workdir, node_pools, args.dra)


if __name__ == "__main__":
    sys.exit(main())
