"""Serve the app over TLS with uvicorn, reloading the certificate when its files change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from hami_common.settings import SettingsError
from starlette.applications import Starlette

from hami_webhook.app import create_app
from hami_webhook.settings import WebhookSettings
from hami_webhook.tls import ReloadingCertificate

log = logging.getLogger(__name__)
# The API server's webhook client (Go net/http) keeps idle connections for 90 s and reuses them;
# a server that closes sooner (uvicorn's default is 5 s) races that reuse and the API server
# reports `failed calling webhook ... EOF`. So idle connections stay open well past 90 s.
KEEP_ALIVE_SECONDS = 300


def build_server(
    settings: WebhookSettings, app: Starlette | None = None
) -> tuple[uvicorn.Server, ReloadingCertificate]:
    """A uvicorn server whose TLS context is the reloading one. Not started."""
    if settings.cert_file is None or settings.key_file is None:
        raise SettingsError(
            ["cert_file and key_file are required: the webhook serves TLS only; "
             "set --cert-file and --key-file (or HAMI_WEBHOOK_CERT_FILE / HAMI_WEBHOOK_KEY_FILE)"]
        )  # fmt: skip
    certificate = ReloadingCertificate(settings.cert_file, settings.key_file)
    config = uvicorn.Config(
        app if app is not None else create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.cert_file),
        ssl_keyfile=str(settings.key_file),
        lifespan="on",
        http="httptools",  # the C HTTP parser (h11, pure Python, costs more per request)
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    config.load()
    config.ssl = certificate.context  # replace uvicorn's own, which never reloads
    return uvicorn.Server(config), certificate


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (useful with port 0)."""
    for listener in server.servers:
        for sock in listener.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
    raise RuntimeError("server is not listening")


async def wait_started(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    """Wait until `server` listens (wrap in ``asyncio.timeout``); uvicorn has only a flag."""
    while not server.started:
        if serving.done():
            serving.result()  # raise the start-up error
            raise RuntimeError("the server exited before it started listening")
        await asyncio.sleep(0.01)


async def run(server: uvicorn.Server, certificate: ReloadingCertificate, interval: float) -> None:
    """Serve until the server exits, checking the certificate every `interval` seconds."""
    watcher = asyncio.create_task(certificate.watch(interval))
    try:
        await server.serve()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def serve(settings: WebhookSettings) -> None:
    """Run until SIGINT/SIGTERM; the certificate is checked every ``cert_reload_seconds``."""
    server, certificate = build_server(settings)
    await run(server, certificate, settings.cert_reload_seconds)
