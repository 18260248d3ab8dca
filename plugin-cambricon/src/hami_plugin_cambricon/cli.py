"""``python -m hami_plugin_cambricon``: settings in, plugin runtime out (thin entry point),
through the entry point every service shares (`hami_common.settings.main.run_service`).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid settings (a flag, the config
file, the kubeconfig, an ``OTEL_*`` variable), 1 when the device backend cannot start (CNDev
missing or failing), each with a message that says what was wrong. The tracer provider is built
here, passed down to the allocator, and shut down (exporting the last spans) on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping, Sequence

from hami_common.deviceplugin.backend import BackendInitError
from hami_common.deviceplugin.runtime import PluginRuntime, RuntimeOptions
from hami_common.deviceplugin.testing import SpecError
from hami_common.k8s import ConfigError, KubeClient, load_config
from hami_common.settings import CambriconConfig, SettingsError
from hami_common.settings.main import package_version, run_service
from hami_common.telemetry import TelemetryConfigError, setup_tracing
from opentelemetry.trace import TracerProvider

from hami_plugin_cambricon.config import PluginSettings, load_names
from hami_plugin_cambricon.devices import FakeMluBackend, SmluBackend
from hami_plugin_cambricon.policy import CambriconPolicy

log = logging.getLogger("hami_plugin_cambricon")
SERVICE_NAME = "hami-plugin-cambricon"


def make_backend(settings: PluginSettings) -> SmluBackend:
    if settings.backend == "fake":
        if settings.fake_spec is None:
            raise SettingsError(["fake_spec: required with --backend fake"])
        return FakeMluBackend(spec_path=settings.fake_spec)
    from hami_plugin_cambricon.cndev import CndevBackend  # noqa: PLC0415 (loads libcndev.so)

    return CndevBackend(settings.cndev_library, poll=settings.health_interval)


async def run(
    settings: PluginSettings,
    names: CambriconConfig,
    backend: SmluBackend,
    tracer_provider: TracerProvider,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    devices = backend.discover()  # first: a backend that cannot start is the clearer error
    policy = CambriconPolicy(names, backend, devices, split_count=settings.split_count,
                             memory_unit_mib=settings.memory_unit_mib)  # fmt: skip
    config = load_config(str(settings.kubeconfig) if settings.kubeconfig else None)
    async with KubeClient(config, user_agent=SERVICE_NAME) as client:
        runtime = PluginRuntime(
            policy,
            backend,
            client,
            RuntimeOptions(
                node=settings.node_name,
                plugin_dir=settings.plugin_dir,
                register_with_kubelet=settings.register_with_kubelet,
                socket_poll_interval=settings.socket_poll_interval,
            ),
            devices,
            tracer_provider=tracer_provider,
        )
        log.info(
            "node %s: %d MLU(s), resources %s, %s, %s",
            settings.node_name,
            len(devices),
            names.resource_count_name,
            names.resource_core_name,
            names.resource_memory_name,
        )
        await runtime.run(stop)
    log.info("stopped")


async def serve(settings: PluginSettings) -> None:
    """The plugin until SIGTERM/SIGINT. The tracer provider lives exactly as long."""
    names = load_names(settings)  # first: a bad file is a settings error, whatever the backend
    provider = setup_tracing(SERVICE_NAME)
    try:
        await run(settings, names, make_backend(settings), provider)
    finally:
        provider.shutdown()  # exports the spans still in the batch


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    if "NODE_NAME" in env and "HAMI_PLUGIN_NODE_NAME" not in env:
        env["HAMI_PLUGIN_NODE_NAME"] = env["NODE_NAME"]  # HAMi's variable
    return run_service(
        PluginSettings, SERVICE_NAME, serve, argv, environ=env,
        version=package_version(SERVICE_NAME),
        config_errors=(ConfigError, TelemetryConfigError),
        startup_errors=(BackendInitError, SpecError),
        quiet_loggers=("httpx",),
    )  # fmt: skip
