"""The monitor's ASGI app: ``GET /metrics`` (HAMi's monitor metrics, collected in a worker
thread at each scrape), ``GET /healthz``, ``GET /readyz`` (200 once the node's pods are listed).

`create_app(settings)` builds everything from the settings; tests inject the Kubernetes client,
the device source and the registry. The lifespan runs the pod watch and the monitor's pass
(regions, utilisation, feedback, reaping) every ``feedback_interval_seconds``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from hami_common.k8s import ClusterConfig, ConfigError, KubeClient, load_config
from hami_common.settings.main import kubeconfig_hint, package_version
from hami_common.tasks import cancel_all
from hami_common.telemetry import new_registry, register_build_info
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hami_monitor.collector import MonitorCollector
from hami_monitor.containers import Scanner
from hami_monitor.devices import DeviceSource, open_source
from hami_monitor.loop import MonitorLoop
from hami_monitor.pods import PodIndex
from hami_monitor.settings import MonitorSettings

SERVICE_NAME = "hami-monitor"


def kube_config(settings: MonitorSettings) -> ClusterConfig:
    try:
        config = load_config(settings.kubeconfig)
        config.ssl_context()
    except ConfigError as exc:
        raise ConfigError(f"{exc}; {kubeconfig_hint(settings.kubeconfig)}") from None
    return config


class MonitorApp(Starlette):
    """The Starlette app, with the parts tests look at."""

    loop: MonitorLoop
    pods: PodIndex


def create_app(
    settings: MonitorSettings,
    *,
    client: KubeClient | None = None,
    source: DeviceSource | None = None,
    registry: CollectorRegistry | None = None,
) -> MonitorApp:
    """Build the app. Raises `ConfigError` when no ``client`` is given and the kubeconfig does
    not load, `SourceError` when the device source's driver cannot be opened."""
    config = kube_config(settings) if client is None else None
    devices = source if source is not None else open_source(settings.vendor)
    vgpu = settings.hook_path / "vgpu"
    scanner = Scanner(vgpu / "containers")
    pods = PodIndex(client, settings.node_name, devices.allocated_annotation)
    loop = MonitorLoop(
        scanner, pods, feedback=settings.feedback, interval=settings.feedback_interval_seconds,
        reap_after=settings.reap_after_seconds, limits_dir=vgpu / "limits",
    )  # fmt: skip
    registry = registry if registry is not None else new_registry()
    collector = MonitorCollector(settings.node_name, devices, scanner, pods, loop,
                                 legacy=settings.legacy_metrics)  # fmt: skip
    register_build_info(registry, package_version("hami-monitor"))

    def exposition() -> bytes:
        return collector.render().encode() + generate_latest(registry)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if pods.client is None:
                assert config is not None  # noqa: S101  # loaded by create_app
                pods.client = KubeClient(config, user_agent=SERVICE_NAME)
                stack.push_async_callback(pods.client.aclose)
            if source is None:
                stack.callback(devices.close)
            tasks = [asyncio.create_task(pods.run(), name="pods"),
                     asyncio.create_task(loop.run(), name="monitor-pass")]  # fmt: skip
            try:
                yield
            finally:
                await cancel_all(tasks, ignore_errors=True)

    async def metrics(_: Request) -> Response:
        return Response(await run_in_threadpool(exposition), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if not pods.synced.is_set():
            return PlainTextResponse("the node's pods are not listed yet", status_code=503)
        return PlainTextResponse("ok")

    app = MonitorApp(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.loop, app.pods = loop, pods
    return app
