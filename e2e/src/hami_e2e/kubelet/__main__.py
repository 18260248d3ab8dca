"""``python -m hami_e2e.kubelet --kubeconfig K --node N --plugin-dir D [--node N2 --plugin-dir
D2 ...]``: kubelet's device-manager role for fake nodes as a process of its own (what `./just
cluster-up` and the e2e suites run beside the nodes' device plugins). For each node it serves
``<plugin-dir>/kubelet.sock``, follows every plugin that registers, publishes the node's
capacity, and calls ``Allocate`` for each container of a pod bound to the node, logging one line
per container with the env the plugin answered, until SIGTERM. ``--run-containers``: it also
plays the container runtime, starting each allocated container's workload on the node's fake
GPUs with the real hook (`hami_e2e.observe`), and stopping it when the pod is deleted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from hami_common.k8s import ConfigError, KubeClient, load_config

from hami_e2e.kubelet.manager import Allocation, DeviceManager
from hami_e2e.observe import Containers, on_allocation

log = logging.getLogger("hami_e2e.kubelet")


def describe(record: Allocation) -> str:
    """One log line for a container's Allocate: what the container would start with."""
    where = f"{record.namespace}/{record.pod} container {record.container}"
    if record.response is None:
        return f"Allocate for {where} failed: {record.error}"
    env = " ".join(f"{k}={v}" for k, v in sorted(record.response.envs.items()))
    mounts = ", ".join(f"{m.host_path} -> {m.container_path}" for m in record.response.mounts)
    nodes = ", ".join(d.container_path for d in record.response.devices)
    return (
        f"Allocate for {where}: devices {','.join(record.device_ids)}; env {env}; mounts {mounts}"
        + (f"; device nodes {nodes}" if nodes else "")
    )


def _manager(node: str, plugin_dir: Path, client: KubeClient, run: bool) -> DeviceManager:
    def logged(record: Allocation) -> None:
        log.info("%s", describe(record))

    if not run:
        return DeviceManager(node, plugin_dir, client, on_allocation=logged)
    containers = Containers(plugin_dir.parent, plugin_dir.parent / "logs")
    started = on_allocation(containers)

    def logged_and_started(record: Allocation) -> None:
        logged(record)
        started(record)

    return DeviceManager(node, plugin_dir, client, on_allocation=logged_and_started,
                         on_release=containers.stop_pod)  # fmt: skip


async def serve(nodes: list[tuple[str, Path]], kubeconfig: Path, run: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with KubeClient(load_config(kubeconfig), user_agent="hami-e2e-kubelet") as client:
        managers = [_manager(node, plugin_dir, client, run) for node, plugin_dir in nodes]
        try:
            for manager in managers:
                await manager.start()
                log.info("node %s: serving %s", manager.node, manager.socket)
            await stop.wait()
        finally:
            for manager in managers:
                await manager.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hami-e2e-kubelet", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path, help="the cluster's kubeconfig")
    parser.add_argument(
        "--node", action="append", required=True, help="a fake node (repeat, with --plugin-dir)"
    )
    parser.add_argument(
        "--plugin-dir", action="append", required=True, type=Path,
        help="that node's folder of kubelet.sock and the plugins' sockets",
    )  # fmt: skip
    parser.add_argument(
        "--run-containers",
        action="store_true",
        help="start each allocated container's workload (hook/build/release)",
    )
    args = parser.parse_args(argv)
    if len(args.node) != len(args.plugin_dir):
        parser.error("give one --plugin-dir per --node, in the same order")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(list(zip(args.node, args.plugin_dir, strict=True)), args.kubeconfig,
                          args.run_containers))  # fmt: skip
    except ConfigError as exc:
        print(f"hami-e2e-kubelet: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
