"""``python -m hami_e2e.kubelet --kubeconfig K --node N --plugin-dir D [--node N2 --plugin-dir
D2 ...]``: kubelet's device-manager role for fake nodes as a process of its own (what `./just
cluster-up` and the e2e suites run beside the nodes' device plugins). For each node it serves
``<plugin-dir>/kubelet.sock``, follows every plugin that registers, publishes the node's
capacity, and calls ``Allocate`` for each container of a pod bound to the node, logging one line
per container with the env the plugin answered, until SIGTERM. ``--run-containers``: it also
plays the container runtime, starting each allocated container's workload on the node's fake
GPUs with the real hook (`hami_e2e.observe`), and stopping it when the pod is deleted.
``--dra``: kubelet's DRA manager role instead (`hami_e2e.kubelet.dra`): each ``--plugin-dir`` is
then the node's plugin registry folder; the stand-in registers the DRA driver whose
``<driver>-reg.sock`` appears there, prepares the claims of each pod bound to the node once they
are reserved for it (one log line per claim, with the devices and CDI device IDs the driver
answered) and unprepares them when the pod goes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from hami_common.k8s import ConfigError, KubeClient, load_config
from hami_common.tasks import cancel_all

from hami_e2e.kubelet.dra import DraError, DraManager
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


RETRY = 1.0
"""Seconds before the DRA manager of a node starts over (the driver was not there, or went)."""


async def serve_dra(node: str, registry_dir: Path, client: KubeClient) -> None:
    """kubelet's DRA manager for one node until cancelled: registers the driver (waiting for
    it), then prepares and unprepares pods' claims; starts over when the driver goes."""
    while True:
        manager = DraManager(node, registry_dir, client)
        try:
            info = await manager.register(within=RETRY)
            log.info("node %s: DRA driver %s registered (%s)", node, info.name, info.endpoint)
            await manager.run()
        except DraError:
            pass  # no driver yet
        except Exception as exc:  # the driver went (gRPC), or the watch failed
            log.warning("node %s: DRA manager stopped (%s); starting over", node, exc)
        await asyncio.sleep(RETRY)


async def _serve_dra(
    nodes: list[tuple[str, Path]], client: KubeClient, stop: asyncio.Event
) -> None:
    tasks = [asyncio.create_task(serve_dra(node, folder, client), name=f"dra-{node}")
             for node, folder in nodes]  # fmt: skip
    for node, folder in nodes:
        log.info("node %s: DRA manager watching %s", node, folder)
    try:
        await stop.wait()
    finally:
        await cancel_all(tasks)


async def serve(nodes: list[tuple[str, Path]], kubeconfig: Path, run: bool = False,
                dra: bool = False) -> None:  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with KubeClient(load_config(kubeconfig), user_agent="hami-e2e-kubelet") as client:
        if dra:
            await _serve_dra(nodes, client, stop)
            return
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
        help="that node's folder of kubelet.sock and the plugins' sockets (with --dra: its "
        "plugin registry folder, where the DRA driver's <driver>-reg.sock appears)",
    )  # fmt: skip
    parser.add_argument(
        "--dra", action="store_true",
        help="play kubelet's DRA manager (prepare and unprepare claims) instead",
    )  # fmt: skip
    parser.add_argument(
        "--run-containers",
        action="store_true",
        help="start each allocated container's workload (hook/build/release)",
    )
    args = parser.parse_args(argv)
    if len(args.node) != len(args.plugin_dir):
        parser.error("give one --plugin-dir per --node, in the same order")
    if args.dra and args.run_containers:
        parser.error("--run-containers runs what the device plugin's Allocate gave: not with --dra")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(list(zip(args.node, args.plugin_dir, strict=True)), args.kubeconfig,
                          args.run_containers, args.dra))  # fmt: skip
    except ConfigError as exc:
        print(f"hami-e2e-kubelet: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
