"""Prometheus helpers: one registry per app (never the global one) and its ``/metrics`` route."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def new_registry() -> CollectorRegistry:
    """A fresh registry, so two apps in one process (tests) never share metrics."""
    return CollectorRegistry(auto_describe=True)


def metrics_route(
    registry: CollectorRegistry, path: str = "/metrics", *, in_thread: bool = False
) -> Route:
    """A Starlette GET route exposing `registry` in the Prometheus text format; ``in_thread``:
    the collectors run in a worker thread (for collectors that read files or drivers), so a
    scrape never stalls the event loop."""

    async def metrics(_: Request) -> Response:
        if in_thread:
            body = await run_in_threadpool(generate_latest, registry)
        else:
            body = generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Route(path, metrics, methods=["GET"], name="metrics")


def register_build_info(registry: CollectorRegistry, version: str) -> None:
    """HAMi's ``hami_build_info`` gauge (1), with its labels: ours is a Python build, so
    ``go_version`` is empty and ``compiler`` names the interpreter."""
    info = Gauge(
        "hami_build_info", "Build information", registry=registry,
        labelnames=["version", "revision", "build_date", "go_version", "compiler", "platform"],
    )  # fmt: skip
    compiler = f"{platform.python_implementation().lower()} {platform.python_version()}"
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    info.labels(version, "", "", "", compiler, f"linux/{machine}").set(1)
