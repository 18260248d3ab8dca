"""``python -m hami_e2e.kubelet --node N --plugin-dir D --kubeconfig K``: kubelet's
device-manager role for one fake node as a process of its own (what `./just cluster-up` runs
beside each node's device plugin). It serves ``<plugin-dir>/kubelet.sock``, follows every plugin
that registers, publishes the node's capacity, and calls ``Allocate`` for each container of a pod
bound to the node, logging one line per container with the env the plugin answered, until
SIGTERM."""

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
    return (
        f"Allocate for {where}: devices {','.join(record.device_ids)}; env {env}; mounts {mounts}"
    )


async def serve(node: str, plugin_dir: Path, kubeconfig: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with KubeClient(load_config(kubeconfig), user_agent="hami-e2e-kubelet") as client:
        manager = DeviceManager(
            node, plugin_dir, client, on_allocation=lambda r: log.info("%s", describe(r))
        )
        await manager.start()
        log.info("node %s: serving %s", node, manager.socket)
        try:
            await stop.wait()
        finally:
            await manager.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hami-e2e-kubelet", description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True, help="the fake node this stands in for")
    parser.add_argument(
        "--plugin-dir", required=True, type=Path, help="where kubelet.sock and the plugins are"
    )
    parser.add_argument("--kubeconfig", required=True, type=Path, help="the cluster's kubeconfig")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args.node, args.plugin_dir, args.kubeconfig))
    except ConfigError as exc:
        print(f"hami-e2e-kubelet: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
