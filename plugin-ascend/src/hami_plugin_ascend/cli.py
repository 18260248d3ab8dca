"""``python -m hami_plugin_ascend``: settings in, plugin runtime out (thin entry point), through
the entry point every service shares (`hami_common.settings.main.run_service`).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid settings (a flag, the config
files, no ``vnpus`` chip for this node's NPUs, the kubeconfig, an ``OTEL_*`` variable), 1 when
the device backend cannot start (DCMI missing or failing), each with a message that says what
was wrong. The tracer provider is built here, passed down to the allocator, and shut down
(exporting the last spans) on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping, Sequence

from hami_common.deviceplugin.backend import BackendInitError, DeviceBackend
from hami_common.deviceplugin.runtime import PluginRuntime, RuntimeOptions
from hami_common.deviceplugin.testing import SpecError
from hami_common.k8s import ConfigError, KubeClient, load_config
from hami_common.settings import SettingsError
from hami_common.settings.main import package_version, run_service
from hami_common.telemetry import TelemetryConfigError, setup_tracing
from opentelemetry.trace import TracerProvider

from hami_plugin_ascend.config import PluginSettings, load_options
from hami_plugin_ascend.devices import FakeNpuBackend
from hami_plugin_ascend.policy import AscendPolicy

log = logging.getLogger("hami_plugin_ascend")
SERVICE_NAME = "hami-plugin-ascend"


def make_backend(settings: PluginSettings) -> DeviceBackend:
    if settings.backend == "fake":
        if settings.fake_spec is None:
            raise SettingsError(["fake_spec: required with --backend fake"])
        return FakeNpuBackend(spec_path=settings.fake_spec)
    from hami_plugin_ascend.dcmi import DcmiBackend  # noqa: PLC0415 (loads libdcmi.so)

    return DcmiBackend(settings.dcmi_library, poll=settings.health_interval)


async def run(
    settings: PluginSettings, backend: DeviceBackend, tracer_provider: TracerProvider
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    found = backend.discover()  # first: a backend that cannot start is the clearer error
    options = load_options(settings, found)
    devices = [d for d in found if options.keeps(d)]
    policy = AscendPolicy(
        options, devices, hook_path=settings.hook_path, shared_region=settings.shared_region_path
    )
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
                register_interval=settings.register_interval,
                socket_poll_interval=settings.socket_poll_interval,
            ),
            devices,
            tracer_provider=tracer_provider,
            vendors=options.vendor_table(),
        )
        log.info(
            "node %s: %d %s NPU(s) (%s), %d slots each, %s mode, resource %s",
            settings.node_name,
            len(devices),
            options.chip.chip_name,
            options.chip.common_word,
            options.split_count,
            "hami-core" if options.soft else "template",
            policy.resource_name,
        )
        await runtime.run(stop)
    log.info("stopped")


async def serve(settings: PluginSettings) -> None:
    """The plugin until SIGTERM/SIGINT. The tracer provider lives exactly as long."""
    provider = setup_tracing(SERVICE_NAME)
    try:
        await run(settings, make_backend(settings), provider)
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
