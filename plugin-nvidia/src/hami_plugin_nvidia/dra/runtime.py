"""The NVIDIA DRA driver on one node: the ResourceSlice kept current, the kubelet sockets served.

The slice is published at start and again when a device's health changes (an unhealthy device
leaves the slice, so no new claim gets it; prepared claims keep theirs). A failed publish is
retried every ``retry_interval`` seconds; the sockets are served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from hami_common.deviceplugin.backend import (
    DeviceBackend,
    HealthChange,
    PhysicalDevice,
    follow_health,
)
from hami_common.dra import slices
from hami_common.dra.checkpoint import Checkpoint
from hami_common.dra.server import DraServer, SocketPaths
from hami_common.k8s import ApiError, KubeClient
from hami_common.tasks import cancel_all
from opentelemetry.trace import TracerProvider

from hami_plugin_nvidia.dra.devices import DRIVER_NAME, slice_devices
from hami_plugin_nvidia.dra.driver import NvidiaDraDriver
from hami_plugin_nvidia.policy import NvidiaPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DraOptions:
    node: str
    plugins_dir: Path
    registry_dir: Path
    cdi_dir: Path
    driver_name: str = DRIVER_NAME
    retry_interval: float = 5.0


class DraRuntime:
    def __init__(
        self,
        policy: NvidiaPolicy,
        backend: DeviceBackend,
        client: KubeClient,
        options: DraOptions,
        devices: list[PhysicalDevice],
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """``tracer_provider``: the entry point's (it owns it and shuts it down)."""
        self.policy = policy
        self.backend = backend
        self.client = client
        self.options = options
        self.devices = {d.uuid: d for d in devices}
        paths = SocketPaths.for_driver(options.driver_name, options.plugins_dir,
                                       options.registry_dir)  # fmt: skip
        checkpoint = Checkpoint(paths.plugin.parent / "checkpoint.json")
        tracer = tracer_provider.get_tracer("hami_plugin_nvidia.dra") if tracer_provider else None
        self.driver = NvidiaDraDriver(
            client, options.node, policy, devices, checkpoint,
            cdi_dir=options.cdi_dir, name=options.driver_name,
            tracer=tracer,
        )  # fmt: skip
        self.server = DraServer(self.driver, paths)
        self._dirty = asyncio.Event()
        self._dirty.set()

    async def publish_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._dirty.wait()
            self._dirty.clear()
            devices = slice_devices(list(self.devices.values()), self.policy.options)
            try:
                await slices.publish(self.client, self.options.node, self.options.driver_name,
                                     devices)  # fmt: skip
                continue
            except ApiError as exc:
                log.warning("publishing the ResourceSlice failed (%s); retrying", exc)
                self._dirty.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.retry_interval)

    async def watch_health(self, stop: asyncio.Event) -> None:
        async def apply(change: HealthChange) -> bool:
            dev = self.devices.get(change.uuid)
            if dev is None or dev.healthy == change.healthy:
                return False
            self.devices[change.uuid] = replace(dev, healthy=change.healthy, reason=change.reason)
            self._dirty.set()
            return True

        await follow_health(self.backend, lambda: list(self.devices.values()), apply, stop,
                            restart_delay=self.options.retry_interval, log=log)  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        await self.server.start()
        tasks = [
            asyncio.create_task(self.publish_loop(stop), name="slice"),
            asyncio.create_task(self.watch_health(stop), name="health"),
        ]
        try:
            await stop.wait()
        finally:
            await cancel_all(tasks)
            await self.server.stop()
