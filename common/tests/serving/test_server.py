"""The server every service runs, over a real socket: a request whose header or body stalls is
answered 408 and closed within its deadline, a connection that sends nothing is closed, a slow
client that finishes in time and an idle keep-alive connection are not cut; over TLS the app
sees the client certificate the handshake verified; and the listening rule."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import uvicorn
from hami_common.serving import (
    HttpServerSettings,
    bound_port,
    build_server,
    is_loopback,
    require_off_loopback,
    wait_started,
)
from hami_common.serving.tls import ReloadingCertificate
from hami_common.settings import SettingsError
from hami_e2e.pki import ServingPki
from starlette.types import Receive, Scope, Send

DEADLINE = 0.6  # both read timeouts, in seconds


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers the body's length and the TLS client certificate's name."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    tls = (scope.get("extensions") or {}).get("tls")
    body = orjson.dumps({"size": size, "client": None if tls is None else tls["client_cert_name"],
                         "tls": tls is not None})  # fmt: skip
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving(tls: ReloadingCertificate | None = None) -> AsyncIterator[int]:
    settings = HttpServerSettings(
        read_header_timeout_seconds=DEADLINE, read_body_timeout_seconds=DEADLINE
    )
    server = build_server(echo, settings, port=0, tls=tls.context if tls else None,
                          keep_alive=300, graceful_shutdown=1, log_level="warning")  # fmt: skip
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            await wait_started(server, task)
        yield bound_port(server)
    finally:
        server.should_exit = True
        await task


async def closed_after(reader: asyncio.StreamReader) -> tuple[float, bytes]:
    """Read until the server closes: (seconds it took, what it sent)."""
    began = time.monotonic()
    data = await asyncio.wait_for(reader.read(), 10)
    return time.monotonic() - began, data


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    return int(head.split(b" ")[1]), orjson.loads(await reader.readexactly(length))


HEAD = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"


def test_a_stalled_header_is_answered_408_and_closed_within_the_deadline() -> None:
    async def go() -> tuple[float, bytes]:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD[:20])  # half a header, then nothing
            took = await closed_after(reader)
            writer.close()
            return took

    took, data = asyncio.run(go())
    assert DEADLINE * 0.8 < took < DEADLINE + 2
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert data.endswith(b"the request header did not arrive within 0.6s")


def test_a_stalled_body_is_answered_408_and_closed_within_the_deadline() -> None:
    async def go() -> tuple[float, bytes]:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEAD + b"12345")  # half the body, then nothing
            took = await closed_after(reader)
            writer.close()
            return took

    took, data = asyncio.run(go())
    assert DEADLINE * 0.8 < took < DEADLINE + 2
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"the request body did not arrive within 0.6s" in data


def test_a_connection_that_sends_nothing_is_closed() -> None:
    async def go() -> tuple[float, bytes]:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            took = await closed_after(reader)
            writer.close()
            return took

    took, _ = asyncio.run(go())
    assert took < DEADLINE + 2


def test_a_trickle_is_cut_at_the_deadline_not_reset_by_each_byte() -> None:
    async def go() -> bytes:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)

            async def trickle() -> None:  # one byte every 0.1 s: 3 s in all, past the deadline
                for byte in HEAD[:30]:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)

            trickling = asyncio.create_task(trickle())
            took, data = await closed_after(reader)
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await trickling
            writer.close()
            assert took < DEADLINE + 1
            return data

    assert asyncio.run(go()).startswith(b"HTTP/1.1 408")


def test_a_slow_client_that_finishes_in_time_and_an_idle_connection_are_served() -> None:
    """Two requests on one connection, each sent in pieces over most of the deadline, with an
    idle pause longer than the deadline between them (the keep-alive time, not a read)."""

    async def slowly(writer: asyncio.StreamWriter, data: bytes, pieces: int) -> None:
        step = len(data) // pieces + 1
        for i in range(0, len(data), step):
            writer.write(data[i : i + step])
            await writer.drain()
            await asyncio.sleep(DEADLINE * 0.6 / pieces)

    async def go() -> list[tuple[int, dict[str, Any]]]:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for _ in range(2):
                await slowly(writer, HEAD, 4)  # header over 0.6 x the deadline
                await slowly(writer, b"0123456789", 4)  # and the body too
                answers.append(await response(reader))
                await asyncio.sleep(DEADLINE * 2)  # idle between requests
            writer.close()
            return answers

    assert asyncio.run(go()) == [(200, {"size": 10, "client": None, "tls": False})] * 2


def _client_context(pki: ServingPki, cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if cert:
        context.load_cert_chain(pki.client.cert, pki.client.key)
    return context


async def _tls_request(port: int, context: ssl.SSLContext) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(HEAD + b"0123456789")
    try:
        return await response(reader)
    finally:
        writer.close()


def test_the_app_sees_the_client_certificate_the_handshake_verified(
    pki: Callable[[str], ServingPki],
) -> None:
    ours, theirs = pki("a"), pki("b")
    tls = ReloadingCertificate(ours.server.cert, ours.server.key, ours.ca_file)

    async def go() -> tuple[Any, ...]:
        async with serving(tls) as port:
            with_cert = await _tls_request(port, _client_context(ours, cert=True))
            without = await _tls_request(port, _client_context(ours, cert=False))
            foreign = _client_context(ours, cert=False)
            foreign.load_cert_chain(theirs.client.cert, theirs.client.key)
            try:
                await _tls_request(port, foreign)
                refused = ""
            except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as exc:
                refused = type(exc).__name__
            return with_cert, without, refused

    with_cert, without, refused = asyncio.run(go())
    assert with_cert == (200, {"size": 10, "client": "CN=client-a", "tls": True})
    assert without == (200, {"size": 10, "client": None, "tls": True})
    assert refused  # a certificate the CA did not sign fails the handshake


def test_a_client_ca_that_does_not_load_names_the_flag(
    pki: Callable[[str], ServingPki], tmp_path: Any
) -> None:
    ours = pki("a")
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"cannot load the client CA --client-ca-file .*ca\.pem"):
        ReloadingCertificate(ours.server.cert, ours.server.key, bad)


def test_a_new_client_ca_is_trusted_after_a_reload(
    pki: Callable[[str], ServingPki], tmp_path: Any
) -> None:
    ours, rotated = pki("a"), pki("b")
    bundle = tmp_path / "client-ca.pem"
    bundle.write_bytes(ours.ca_file.read_bytes())
    tls = ReloadingCertificate(ours.server.cert, ours.server.key, bundle)
    newcomer = _client_context(ours, cert=False)
    newcomer.load_cert_chain(rotated.client.cert, rotated.client.key)

    async def go() -> dict[str, Any]:
        async with serving(tls) as port:
            bundle.write_bytes(ours.ca_file.read_bytes() + rotated.ca_file.read_bytes())
            assert tls.check() is True
            return (await _tls_request(port, newcomer))[1]

    assert asyncio.run(go())["client"] == "CN=client-b"


def test_the_listening_rule() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.1.2.3")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com", ""):
        assert not is_loopback(host)
    require_off_loopback("127.0.0.1", ["--cert-file"], "x")  # loopback: anything goes
    require_off_loopback("0.0.0.0", [], "x")  # every flag the rule needs is set
    with pytest.raises(SettingsError) as caught:
        require_off_loopback("0.0.0.0", ["--cert-file", "--client-ca-file"], "/bind")
    assert caught.value.problems == [
        "host (--host 0.0.0.0): listening beyond loopback exposes /bind, so it needs "
        "--cert-file, --client-ca-file; set them, or listen on 127.0.0.1"
    ]


def test_every_server_defaults_to_loopback() -> None:
    assert HttpServerSettings().host == "127.0.0.1"
    server = build_server(echo, HttpServerSettings(), port=0, tls=None, keep_alive=5,
                          graceful_shutdown=1, log_level="warning")  # fmt: skip
    assert isinstance(server, uvicorn.Server)
    assert server.config.host == "127.0.0.1"
