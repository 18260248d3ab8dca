"""The uvicorn server every HTTP service runs, and the rule for where it may listen.

The rule: every server listens on 127.0.0.1 unless ``--host`` says otherwise, and listening on
any other address (``0.0.0.0``: every interface) needs TLS, and for a server whose routes act on
the cluster (the extender's ``/filter`` and ``/bind``), a client CA too; start-up refuses
otherwise, with one line that names the flags. A Deployment (the Helm chart) sets ``--host
0.0.0.0`` together with its certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from typing import Annotated

import uvicorn
from pydantic import Field
from starlette.types import ASGIApp

from hami_common.serving.protocol import read_timeout_protocol
from hami_common.serving.tls import ReloadingCertificate
from hami_common.settings import ServiceSettings, SettingsError


class HttpServerSettings(ServiceSettings):
    """Settings every HTTP service shares: where it listens and how long a request may take to
    arrive."""

    host: str = Field(
        default="127.0.0.1",
        description="address to listen on; any address but loopback needs TLS (see the "
        "service's certificate flags)",
    )
    read_header_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0,
        description="a request's header must arrive within this time of its first byte (of the "
        "connection, for the first request), else 408 and the connection is closed",
    )
    read_body_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0,
        description="a request's body must arrive within this time of the end of its header, "
        "else 408 and the connection is closed",
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_off_loopback(host: str, missing: list[str], what: str) -> None:
    """The listening rule: raise `SettingsError` when ``host`` is not loopback and ``missing``
    (the flags the rule needs that are not set) is not empty; ``what`` says what the address
    would expose."""
    if missing and not is_loopback(host):
        raise SettingsError([
            f"host (--host {host}): listening beyond loopback exposes {what}, so it needs "
            f"{', '.join(missing)}; set {'them' if len(missing) > 1 else 'it'}, or listen on "
            "127.0.0.1"
        ])  # fmt: skip


def build_server(
    app: ASGIApp,
    settings: HttpServerSettings,
    *,
    port: int,
    tls: ssl.SSLContext | None,
    keep_alive: int,
    graceful_shutdown: int,
    log_level: str,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` with the read timeouts; ``tls``, when given, is the context
    served as is (so that a `ReloadingCertificate` reloads it). Not started."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        lifespan="on",
        http=read_timeout_protocol(
            settings.read_header_timeout_seconds, settings.read_body_timeout_seconds
        ),
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown,
        timeout_keep_alive=keep_alive,
    )
    config.load()
    config.ssl = tls  # uvicorn's own context would never reload
    return uvicorn.Server(config)


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


async def run(
    server: uvicorn.Server, certificate: ReloadingCertificate | None, interval: float
) -> None:
    """Serve until the server exits, checking the certificate (if any) every `interval` s."""
    if certificate is None:
        await server.serve()
        return
    watcher = asyncio.create_task(certificate.watch(interval))
    try:
        await server.serve()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
