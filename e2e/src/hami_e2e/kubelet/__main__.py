"""``python -m hami_e2e.kubelet --kubeconfig K --node N --plugin-dir D [--node N2 --plugin-dir
D2 ...]``: kubelet's device-manager role for fake nodes as a process of its own (what `./just
cluster-up` and the e2e suites run beside the nodes' device plugins). For each node it serves
``<plugin-dir>/kubelet.sock``, follows every plugin that registers, publishes the node's
capacity, and calls ``Allocate`` for each container of a pod bound to the node, logging one line
per container with the env the plugin answered, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from hami_common.k8s import ConfigError, KubeClient, load_config

from hami_e2e.kubelet.manager import Allocation, DeviceManager

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


async def serve(nodes: list[tuple[str, Path]], kubeconfig: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with KubeClient(load_config(kubeconfig), user_agent="hami-e2e-kubelet") as client:
        managers = [
            DeviceManager(node, plugin_dir, client, on_allocation=lambda r: log.info(
                "%s", describe(r)))
            for node, plugin_dir in nodes
        ]  # fmt: skip
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
    args = parser.parse_args(argv)
    if len(args.node) != len(args.plugin_dir):
        parser.error("give one --plugin-dir per --node, in the same order")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(list(zip(args.node, args.plugin_dir, strict=True)), args.kubeconfig))
    except ConfigError as exc:
        print(f"hami-e2e-kubelet: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
