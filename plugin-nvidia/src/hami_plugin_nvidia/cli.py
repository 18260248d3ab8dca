"""``python -m hami_plugin_nvidia``: settings in, plugin runtime out (thin entry point).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid settings, 1 when the device
backend cannot start (e.g. NVML init failed), each with a message that says what was wrong.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from hami_common.deviceplugin.backend import (
    BackendInitError,
    DeviceBackend,
    PhysicalDevice,
)
from hami_common.deviceplugin.runtime import PluginRuntime, RuntimeOptions
from hami_common.deviceplugin.testing import FakeBackend, SpecError
from hami_common.k8s import ConfigError, KubeClient, load_config
from hami_common.settings import SettingsError
from hami_common.telemetry import setup_tracing

from hami_plugin_nvidia.config import NvidiaOptions, PluginSettings, load_options
from hami_plugin_nvidia.events import AsymmetricLinkReporter
from hami_plugin_nvidia.policy import NvidiaPolicy

log = logging.getLogger("hami_plugin_nvidia")


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
        if settings.fake_spec is None:
            raise SettingsError(["fake_spec: required with --backend fake"])
        return FakeBackend(spec_path=settings.fake_spec)
    from hami_plugin_nvidia.nvml import NvmlBackend  # noqa: PLC0415 (imports NVML)

    return NvmlBackend()


async def serve(settings: PluginSettings, options: NvidiaOptions, backend: DeviceBackend) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    policy = NvidiaPolicy(
        options, hook_path=settings.hook_path, lock_dir=settings.lock_dir, version=settings.version
    )
    devices = backend.discover()  # first: a backend that cannot start is the clearer error
    config = load_config(str(settings.kubeconfig) if settings.kubeconfig else None)
    async with KubeClient(config, user_agent="hami-plugin-nvidia") as client:
        policy.on_asymmetric = AsymmetricLinkReporter(client, settings.node_name)
        runtime = PluginRuntime(
            policy,
            backend,
            client,
            RuntimeOptions(
                node=settings.node_name,
                plugin_dir=settings.plugin_dir,
                register_with_kubelet=settings.register_with_kubelet,
                register_interval=settings.register_interval,
                socket_poll_interval=settings.socket_poll_interval,
            ),
            devices,
        )
        log.info(
            "node %s: %d device(s), split %d, resource %s",
            settings.node_name,
            len(runtime.table.devices),
            options.split_count,
            options.resource_name,
        )
        await runtime.run(stop)
    log.info("stopped")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    if "NODE_NAME" in env and "HAMI_PLUGIN_NODE_NAME" not in env:
        env["HAMI_PLUGIN_NODE_NAME"] = env["NODE_NAME"]  # HAMi's variable
    try:
        settings = PluginSettings.load(sys.argv[1:] if argv is None else argv, env)
        options = load_options(settings)
    except SettingsError as exc:
        print(f"hami-plugin-nvidia: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    setup_tracing("hami-plugin-nvidia", env)
    try:
        backend: DeviceBackend = FilteredBackend(make_backend(settings), options)
        asyncio.run(serve(settings, options, backend))
    except (BackendInitError, SpecError, ConfigError, SettingsError) as exc:
        print(f"hami-plugin-nvidia: cannot start: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SettingsError) else 1
    return 0
