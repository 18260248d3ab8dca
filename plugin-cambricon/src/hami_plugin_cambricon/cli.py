"""``python -m hami_plugin_cambricon``: settings in, plugin runtime out (thin entry point),
through the entry point every plugin shares (`hami_common.deviceplugin.service.plugin_main`).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid settings (a flag, the config
file, the kubeconfig, an ``OTEL_*`` variable), 1 when the device backend cannot start (CNDev
missing or failing), each with a message that says what was wrong. The tracer provider is built
here, passed down to the allocator, and shut down (exporting the last spans) on the way out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from hami_common.deviceplugin import service
from hami_common.deviceplugin.runtime import PluginRuntime
from hami_common.settings import CambriconConfig
from opentelemetry.trace import TracerProvider

from hami_plugin_cambricon.config import PluginSettings, load_names
from hami_plugin_cambricon.devices import FakeMluBackend, SmluBackend
from hami_plugin_cambricon.policy import CambriconPolicy

log = logging.getLogger("hami_plugin_cambricon")
SERVICE_NAME = "hami-plugin-cambricon"


def make_backend(settings: PluginSettings) -> SmluBackend:
    if settings.backend == "fake":
        return FakeMluBackend(spec_path=service.require_fake_spec(settings.fake_spec))
    from hami_plugin_cambricon.cndev import CndevBackend  # noqa: PLC0415 (loads libcndev.so)

    return CndevBackend(settings.cndev_library, poll=settings.health_interval)


async def run(
    settings: PluginSettings,
    names: CambriconConfig,
    backend: SmluBackend,
    tracer_provider: TracerProvider,
) -> None:
    stop = service.stop_on_signals()
    devices = backend.discover()  # first: a backend that cannot start is the clearer error
    policy = CambriconPolicy(names, backend, devices, split_count=settings.split_count,
                             memory_unit_mib=settings.memory_unit_mib)  # fmt: skip
    async with service.kube_client(settings, SERVICE_NAME) as client:
        runtime = PluginRuntime(
            policy,
            backend,
            client,
            service.runtime_options(settings),
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
    await service.serve_traced(
        SERVICE_NAME, lambda provider: run(settings, names, make_backend(settings), provider)
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return service.plugin_main(PluginSettings, SERVICE_NAME, serve, argv, environ)
