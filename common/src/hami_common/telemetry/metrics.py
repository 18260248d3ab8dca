"""Prometheus helpers: one registry per app (never the global one) and its ``/metrics`` route."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def new_registry() -> CollectorRegistry:
    """A fresh registry, so two apps in one process (tests) never share metrics."""
    return CollectorRegistry(auto_describe=True)


def metrics_route(registry: CollectorRegistry, path: str = "/metrics") -> Route:
    """A Starlette GET route exposing `registry` in the Prometheus text format."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route(path, metrics, methods=["GET"], name="metrics")
