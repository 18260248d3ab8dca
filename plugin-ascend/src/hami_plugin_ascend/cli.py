"""``python -m hami_plugin_ascend``: settings in, plugin runtime out (thin entry point), through
the entry point every plugin shares (`hami_common.deviceplugin.service.plugin_main`).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid settings (a flag, the config
files, no ``vnpus`` chip for this node's NPUs, the kubeconfig, an ``OTEL_*`` variable), 1 when
the device backend cannot start (DCMI missing or failing), each with a message that says what
was wrong. The tracer provider is built here, passed down to the allocator, and shut down
(exporting the last spans) on the way out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from hami_common.deviceplugin import service
from hami_common.deviceplugin.backend import DeviceBackend
from hami_common.deviceplugin.runtime import PluginRuntime
from opentelemetry.trace import TracerProvider

from hami_plugin_ascend.config import PluginSettings, load_options
from hami_plugin_ascend.devices import FakeNpuBackend
from hami_plugin_ascend.policy import AscendPolicy

log = logging.getLogger("hami_plugin_ascend")
SERVICE_NAME = "hami-plugin-ascend"


def make_backend(settings: PluginSettings) -> DeviceBackend:
    if settings.backend == "fake":
        return FakeNpuBackend(spec_path=service.require_fake_spec(settings.fake_spec))
    from hami_plugin_ascend.dcmi import DcmiBackend  # noqa: PLC0415 (loads libdcmi.so)

    return DcmiBackend(settings.dcmi_library, poll=settings.health_interval)


async def run(
    settings: PluginSettings, backend: DeviceBackend, tracer_provider: TracerProvider
) -> None:
    stop = service.stop_on_signals()
    found = backend.discover()  # first: a backend that cannot start is the clearer error
    options = load_options(settings, found)
    devices = [d for d in found if options.keeps(d)]
    policy = AscendPolicy(
        options, devices, hook_path=settings.hook_path, shared_region=settings.shared_region_path
    )
    async with service.kube_client(settings, SERVICE_NAME) as client:
        runtime = PluginRuntime(
            policy,
            backend,
            client,
            service.runtime_options(settings, register_interval=settings.register_interval),
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
    await service.serve_traced(
        SERVICE_NAME, lambda provider: run(settings, make_backend(settings), provider)
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return service.plugin_main(PluginSettings, SERVICE_NAME, serve, argv, environ)
