"""``python -m hami_plugin_nvidia``: settings in, plugin runtime out (thin entry point), through
the entry point every plugin shares (`hami_common.deviceplugin.service.plugin_main`).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid settings (a flag, the config
files, the kubeconfig, an ``OTEL_*`` variable), 1 when the device backend cannot start (e.g.
NVML init failed, or the node's MIG layout does not fit ``--mig-strategy single``), each with a
message that says what was wrong. The tracer provider is built here, passed down to the
allocator, and shut down (exporting the last spans) on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hami_common.deviceplugin import service
from hami_common.deviceplugin.backend import DeviceBackend, PhysicalDevice
from hami_common.deviceplugin.runtime import PluginRuntime
from hami_common.deviceplugin.testing import FakeBackend, load_spec
from hami_common.k8s import PODS, ApiError, KubeClient
from hami_common.protocol.annotations import VGPU_NODE
from opentelemetry.trace import TracerProvider

from hami_plugin_nvidia.config import NvidiaOptions, PluginSettings, load_options
from hami_plugin_nvidia.events import AsymmetricLinkReporter
from hami_plugin_nvidia.mig import (
    FakeMig,
    MigDevices,
    MigError,
    MigManager,
    enable_idle,
    held_placements,
)
from hami_plugin_nvidia.mps import MpsDaemons
from hami_plugin_nvidia.policy import NvidiaPolicy
from hami_plugin_nvidia.static_mig import StaticMigError
from hami_plugin_nvidia.static_mig import plan as plan_static_mig
from hami_plugin_nvidia.volcano import VolcanoPolicy
from hami_plugin_nvidia.volcano_allocator import VolcanoAllocator

log = logging.getLogger("hami_plugin_nvidia")
SERVICE_NAME = "hami-plugin-nvidia"


class FilteredBackend:
    """Hides the devices the node config filters out (``filterdevices``)."""

    def __init__(self, inner: DeviceBackend, options: NvidiaOptions) -> None:
        self.inner = inner
        self.options = options

    def _keep(self, dev: PhysicalDevice) -> bool:
        return dev.uuid not in self.options.filter_uuids and (
            dev.index not in self.options.filter_indexes
        )

    def discover(self) -> list[PhysicalDevice]:
        return [d for d in self.inner.discover() if self._keep(d)]

    def links(self, devices: Sequence[PhysicalDevice]):  # type: ignore[no-untyped-def]
        return self.inner.links(devices)

    def health_events(self, devices: Sequence[PhysicalDevice]):  # type: ignore[no-untyped-def]
        return self.inner.health_events(devices)

    def close(self) -> None:
        self.inner.close()


def make_backend(settings: PluginSettings) -> DeviceBackend:
    if settings.backend == "fake":
        return FakeBackend(spec_path=service.require_fake_spec(settings.fake_spec))
    from hami_plugin_nvidia.nvml import NvmlBackend  # noqa: PLC0415 (imports NVML)

    return NvmlBackend()


MIG_RECLAIM_INTERVAL = 5.0  # seconds between passes (HAMi's reconciler: 5 s)


def make_mig(settings: PluginSettings, devices: Sequence[PhysicalDevice]) -> MigDevices:
    """MIG control: the fake's GPUs in MIG mode (their spec ``"mode": "mig"``), or NVML."""
    if settings.backend == "fake":
        fake = FakeMig({d.uuid: d.model for d in devices if d.mode == "mig"})
        # Instances that exist already (static MIG): the spec's "mig_instances" per device.
        spec = load_spec(settings.fake_spec) if settings.fake_spec else {}
        for dev in spec.get("devices", []):
            for inst in dev.get("mig_instances") or []:
                fake.create(dev["uuid"], inst["profile"], inst["start"], inst["size"])
        return fake
    from hami_plugin_nvidia.nvml import NvmlMig  # noqa: PLC0415 (imports NVML)

    return NvmlMig()


async def reclaim_mig(
    client: KubeClient, node: str, policy: NvidiaPolicy, stop: asyncio.Event,
    interval: float = MIG_RECLAIM_INTERVAL,
) -> None:  # fmt: skip
    """Destroys the MIG instances no live pod on this node reserves (pods that ended, or were
    deleted), every ``interval`` seconds until ``stop``."""
    while not stop.is_set():
        if policy.mig is not None and policy.mig_gpus:
            try:
                pods = await client.list(PODS, field_selector=f"spec.nodeName={node}")
                held = held_placements(pods.get("items") or [])
                # A reservation made at filter time is not bound here yet: keep its slices too.
                pending = await client.list(PODS, label_selector=f"{VGPU_NODE}={node}")
                held |= held_placements(pending.get("items") or [])
                await asyncio.to_thread(policy.mig.reclaim, sorted(policy.mig_gpus), held)
            except (ApiError, MigError) as exc:
                log.warning("MIG reclaim pass failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def run(
    settings: PluginSettings,
    options: NvidiaOptions,
    backend: DeviceBackend,
    tracer_provider: TracerProvider,
) -> None:
    stop = service.stop_on_signals()
    devices = backend.discover()  # first: a backend that cannot start is the clearer error
    mig = None
    if options.operating_mode == "mig":
        mig = MigManager(make_mig(settings, devices))
        devices = enable_idle(devices, mig.devices, options.mig_allowlist)
    static_mig = None
    if options.mig_strategy != "none" and options.operating_mode != "mig":
        static_mig = plan_static_mig(options.mig_strategy, devices, make_mig(settings, devices))
    mps = (MpsDaemons(settings.mps_dir, settings.mps_control, settings.mps_shm_dir)
           if options.operating_mode == "mps" else None)  # fmt: skip
    common: dict[str, Any] = {
        "hook_path": settings.hook_path, "lock_dir": settings.lock_dir,
        "version": settings.hook_version, "mig": mig, "mps": mps, "static_mig": static_mig,
    }  # fmt: skip
    if settings.scheduler == "volcano":
        volcano = VolcanoPolicy(options, memory_factor=settings.gpu_memory_factor, **common)
        volcano.check_memory_ids(devices)
        policy: NvidiaPolicy = volcano
    else:
        policy = NvidiaPolicy(options, **common)
    async with service.kube_client(settings, SERVICE_NAME) as client:
        if settings.dra:
            await _run_dra(settings, policy, backend, client, devices, stop=stop,
                           tracer_provider=tracer_provider)  # fmt: skip
            return
        policy.on_asymmetric = AsymmetricLinkReporter(client, settings.node_name)
        volcano_policy = policy if isinstance(policy, VolcanoPolicy) else None
        runtime = PluginRuntime(
            policy,
            backend,
            client,
            service.runtime_options(settings, register_interval=settings.register_interval),
            devices,
            tracer_provider=tracer_provider,
            allocator=(
                (lambda c, node, tracer: VolcanoAllocator(c, node, volcano_policy, tracer=tracer))
                if volcano_policy is not None
                else None
            ),
        )
        log.info(
            "node %s: %d device(s), split %d, resource %s, scheduler %s",
            settings.node_name,
            len(runtime.table.devices),
            options.split_count,
            policy.resource_name,
            settings.scheduler,
        )
        reclaim = asyncio.create_task(reclaim_mig(client, settings.node_name, policy, stop))
        try:
            await runtime.run(stop)
        finally:
            stop.set()
            await reclaim
            if mps is not None:
                await asyncio.to_thread(mps.stop_all)
    log.info("stopped")


async def _run_dra(
    settings: PluginSettings,
    policy: NvidiaPolicy,
    backend: DeviceBackend,
    client: KubeClient,
    devices: list[PhysicalDevice],
    *,
    stop: asyncio.Event,
    tracer_provider: TracerProvider,
) -> None:
    from hami_plugin_nvidia.dra.runtime import DraOptions, DraRuntime  # noqa: PLC0415

    runtime = DraRuntime(
        policy,
        backend,
        client,
        DraOptions(
            node=settings.node_name,
            plugins_dir=settings.dra_plugins_dir,
            registry_dir=settings.dra_registry_dir,
            cdi_dir=settings.cdi_dir,
            driver_name=settings.dra_driver_name,
        ),
        devices,
        tracer_provider=tracer_provider,
    )
    log.info("node %s: DRA driver %s, %d device(s)", settings.node_name,
             settings.dra_driver_name, len(devices))  # fmt: skip
    await runtime.run(stop)
    log.info("stopped")


async def serve(settings: PluginSettings) -> None:
    """The plugin until SIGTERM/SIGINT. The tracer provider lives exactly as long."""
    options = load_options(settings)

    async def run_traced(provider: TracerProvider) -> None:
        await run(settings, options, FilteredBackend(make_backend(settings), options), provider)

    await service.serve_traced(SERVICE_NAME, run_traced)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return service.plugin_main(
        PluginSettings, SERVICE_NAME, serve, argv, environ,
        hami_variables={"MIG_STRATEGY": "mig_strategy"},  # HAMi's variable
        startup_errors=(StaticMigError,),
    )  # fmt: skip
