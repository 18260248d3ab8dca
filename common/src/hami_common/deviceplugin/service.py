"""What every vendor's device plugin entry point shares (``python -m hami_plugin_<vendor>``).

`DevicePluginSettings` holds the settings every plugin has (this node, kubelet's folder, the
kubeconfig, the log level); a vendor's settings add their own. `plugin_main` starts a plugin
through the entry point every service shares (`hami_common.settings.main.run_service`), with
HAMi's variable names read too (``NODE_NAME``) and the exits every plugin documents: 2 for
invalid settings (a flag, a file, the kubeconfig, an ``OTEL_*`` variable), 1 when the device
backend cannot start. `serve_traced` gives the plugin its tracer provider for as long as it runs;
`stop_on_signals`, `runtime_options` and `kube_client` are the pieces of a plugin's run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from opentelemetry.trace import TracerProvider
from pydantic import Field

from hami_common.deviceplugin.backend import BackendInitError
from hami_common.deviceplugin.runtime import RuntimeOptions
from hami_common.deviceplugin.testing import SpecError
from hami_common.k8s import ConfigError, KubeClient, load_config
from hami_common.settings import ServiceSettings, SettingsError
from hami_common.settings.main import package_version, run_service
from hami_common.telemetry import TelemetryConfigError, setup_tracing

S = TypeVar("S", bound="DevicePluginSettings")

HAMI_VARIABLES = {"NODE_NAME": "node_name"}
"""HAMi's environment variables every plugin reads too (a ``HAMI_PLUGIN_*`` one wins)."""


class DevicePluginSettings(ServiceSettings):
    """The settings of every device plugin (CLI > env ``HAMI_PLUGIN_*`` > ``--config-file`` >
    default); a vendor's plugin subclasses it with its own."""

    env_prefix: ClassVar[str] = "HAMI_PLUGIN_"

    node_name: Annotated[str, Field(min_length=1)] = Field(
        description="this node; the DaemonSet passes spec.nodeName (also read from NODE_NAME)"
    )
    plugin_dir: Path = Field(
        default=Path("/var/lib/kubelet/device-plugins"),
        description="kubelet's device plugin folder: kubelet.sock is there, our socket(s) go there",
    )
    register_with_kubelet: bool = Field(
        default=True, description="register with kubelet (off: only serve the socket(s))"
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig for the API (default: KUBECONFIG, ~/.kube/config, then in-cluster)",
    )
    socket_poll_interval: Annotated[float, Field(gt=0, le=60)] = Field(
        default=1.0,
        description="seconds between checks that kubelet.sock and our socket(s) are still there",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="log level"
    )


def require_fake_spec(fake_spec: Path | None) -> Path:
    """The fake backend's spec file; a settings error when ``--backend fake`` has none."""
    if fake_spec is None:
        raise SettingsError(["fake_spec: required with --backend fake"])
    return fake_spec


def runtime_options(settings: DevicePluginSettings, **more: Any) -> RuntimeOptions:
    """The plugin runtime's options from the settings every plugin has (``more``: a vendor's
    own, e.g. ``register_interval``)."""
    return RuntimeOptions(
        node=settings.node_name,
        plugin_dir=settings.plugin_dir,
        register_with_kubelet=settings.register_with_kubelet,
        socket_poll_interval=settings.socket_poll_interval,
        **more,
    )


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets (call it in the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextlib.asynccontextmanager
async def kube_client(settings: DevicePluginSettings, user_agent: str) -> AsyncIterator[KubeClient]:
    """The API client of ``--kubeconfig`` (default: KUBECONFIG, ~/.kube/config, in-cluster)."""
    config = load_config(str(settings.kubeconfig) if settings.kubeconfig else None)
    async with KubeClient(config, user_agent=user_agent) as client:
        yield client


async def serve_traced(service: str, run: Callable[[TracerProvider], Awaitable[None]]) -> None:
    """``run`` with the service's tracer provider, which lives exactly as long: it is shut down
    (exporting the spans still in the batch) however ``run`` ends."""
    provider = setup_tracing(service)
    try:
        await run(provider)
    finally:
        provider.shutdown()


def plugin_main(
    settings_type: type[S],
    service: str,
    serve: Callable[[S], Coroutine[Any, Any, None]],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    hami_variables: Mapping[str, str] | None = None,
    startup_errors: tuple[type[Exception], ...] = (),
) -> int:
    """A device plugin's process: its settings (CLI ``argv``, env ``environ``, where HAMi's
    variables of `HAMI_VARIABLES` and ``hami_variables`` stand for the ``HAMI_PLUGIN_*`` ones
    not set) served by ``serve`` until SIGTERM/SIGINT. Exits 0 after a clean stop, 2 for invalid
    settings, 1 when the backend cannot start (`BackendInitError`, `SpecError`, and
    ``startup_errors``)."""
    env = dict(os.environ if environ is None else environ)
    for theirs, field in {**HAMI_VARIABLES, **(hami_variables or {})}.items():
        ours = settings_type.env_name(field)
        if theirs in env and ours not in env:
            env[ours] = env[theirs]
    return run_service(
        settings_type, service, serve, argv, environ=env,
        version=package_version(service),
        config_errors=(ConfigError, TelemetryConfigError),
        startup_errors=(BackendInitError, SpecError, *startup_errors),
        quiet_loggers=("httpx",),
    )  # fmt: skip
