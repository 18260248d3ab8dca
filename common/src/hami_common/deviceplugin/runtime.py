"""One vendor plugin on one node: discovery, health, node registration and the gRPC server,
run together until stopped.

A health watcher that fails is logged and restarted; a device that fails is marked unhealthy
(ListAndWatch and the register annotation both say so); neither stops the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hami_rustcore
from opentelemetry.trace import Tracer, TracerProvider

from hami_common.deviceplugin.allocator import Allocator, PodAllocator
from hami_common.deviceplugin.backend import (
    DeviceBackend,
    HealthChange,
    PhysicalDevice,
    follow_health,
)
from hami_common.deviceplugin.devices import DeviceTable
from hami_common.deviceplugin.registrar import NodeRegistrar
from hami_common.deviceplugin.server import CapacityService, DevicePluginService, PluginServer
from hami_common.deviceplugin.vendor import VendorPolicy
from hami_common.k8s import KubeClient
from hami_common.settings import VendorTable
from hami_common.tasks import cancel_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeOptions:
    node: str
    plugin_dir: Path = Path("/var/lib/kubelet/device-plugins")
    register_with_kubelet: bool = True
    register_interval: float = 30.0
    register_retry: float = 5.0
    socket_poll_interval: float = 1.0
    health_restart_delay: float = 5.0


def to_allocate_keys(vendors: VendorTable | None = None) -> dict[str, str]:
    """Each vendor's to-allocate annotation key, from the Rust core's vendor table (the
    built-in vendors, and ``vendors``: an Ascend plugin's chip)."""
    return {
        vendor: str(spec["to_allocate_annotation"])
        for vendor, spec in hami_rustcore.RequestModel(vendors).vendor_specs().items()
        if spec.get("to_allocate_annotation")
    }


class PluginRuntime:
    def __init__(
        self,
        policy: VendorPolicy,
        backend: DeviceBackend,
        client: KubeClient | None,
        options: RuntimeOptions,
        devices: list[PhysicalDevice] | None = None,
        *,
        tracer_provider: TracerProvider,
        vendors: VendorTable | None = None,
        allocator: Callable[[KubeClient, str, Tracer], PodAllocator] | None = None,
    ) -> None:
        """``devices``: what ``backend.discover()`` returned, when the caller already asked.
        ``tracer_provider``: the entry point's (it owns it and shuts it down). ``vendors``: the
        core's vendor table entries of vendors that are not built in (an Ascend chip).
        ``allocator``: builds the allocation protocol from the client, the node and the tracer
        when it is not HAMi's (the NVIDIA plugin's volcano mode)."""
        self.policy = policy
        self.backend = backend
        self.client = client
        self.options = options
        devices = backend.discover() if devices is None else devices
        for dev in devices:
            if not dev.healthy:
                log.warning(
                    "device %s (index %d) is unhealthy: %s", dev.uuid, dev.index, dev.reason
                )
        self.table = DeviceTable(devices, policy.split_count, policy.numa_topology)
        tracer = tracer_provider.get_tracer("hami_common.deviceplugin")
        self.allocator: PodAllocator | None = None
        if client is not None and allocator is not None:
            self.allocator = allocator(client, options.node, tracer)
        elif client is not None:
            self.allocator = Allocator(
                client, options.node, policy, to_allocate_keys=to_allocate_keys(vendors),
                tracer=tracer,
            )  # fmt: skip
        self.service = DevicePluginService(self.table, policy, self.allocator)
        self.server = PluginServer(
            self.service,
            options.plugin_dir,
            register=options.register_with_kubelet,
            poll_interval=options.socket_poll_interval,
        )
        # resources advertised only so that node capacity carries them (Cambricon's units)
        self.capacity_tables: list[DeviceTable] = []
        self.capacity_servers: list[PluginServer] = []
        for resource in policy.capacity_resources():
            listed = resource.listed(devices) if resource.listed is not None else devices
            table = DeviceTable(listed, 1, policy.numa_topology, resource.replicas,
                                as_is=resource.listed is not None)  # fmt: skip
            self.capacity_tables.append(table)
            server = PluginServer(
                CapacityService(table, resource),
                options.plugin_dir,
                register=options.register_with_kubelet,
                poll_interval=options.socket_poll_interval,
            )
            if resource.resource_name == policy.resource_name:
                self.server = server  # it takes the vendor's own place (NVIDIA's single MIG)
            else:
                self.capacity_servers.append(server)
        self.registrar = (
            NodeRegistrar(
                client,
                options.node,
                self.table,
                self.node_annotations,
                interval=options.register_interval,
                retry=options.register_retry,
            )
            if client is not None
            else None
        )

    def node_annotations(self) -> dict[str, str]:
        devices = self.table.devices
        healthy = [d for d in devices if d.healthy]
        return self.policy.node_annotations(devices, self.backend.links(healthy))

    async def watch_health(self, stop: asyncio.Event) -> None:
        async def apply(change: HealthChange) -> bool:
            for table in self.capacity_tables:
                await table.apply(change)
            return await self.table.apply(change)

        await follow_health(self.backend, lambda: self.table.devices, apply, stop,
                            restart_delay=self.options.health_restart_delay, log=log)  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self.watch_health(stop), name="health")]
        if self.registrar is not None:
            tasks.append(asyncio.create_task(self.registrar.run(stop), name="registrar"))
        for server in self.capacity_servers:
            tasks.append(asyncio.create_task(server.run(stop), name=server.policy.resource_name))
        try:
            await self.server.run(stop)
        finally:
            await cancel_all(tasks)
            self.backend.close()
