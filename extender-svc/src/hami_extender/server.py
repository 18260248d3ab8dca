"""Serve the app with uvicorn (plain HTTP: kube-scheduler calls it on loopback, as in HAMi's
chart when the webhook is served elsewhere)."""

from __future__ import annotations

import uvicorn

from hami_extender.app import ExtenderApp, create_app
from hami_extender.settings import ExtenderSettings

# kube-scheduler's extender client (Go net/http) reuses idle connections for up to 90 s; closing
# them sooner (uvicorn's default is 5 s) races that reuse and fails a filter or bind with EOF.
KEEP_ALIVE_SECONDS = 300


def build_server(settings: ExtenderSettings, app: ExtenderApp | None = None) -> uvicorn.Server:
    """A uvicorn server for the app (built from the settings unless given). Not started."""
    config = uvicorn.Config(
        app if app is not None else create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        http="httptools",  # C parser: a /filter body of 5,000 names is ~70 KB
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return uvicorn.Server(config)


async def serve(settings: ExtenderSettings) -> None:
    await build_server(settings).serve()
