"""The served app over a real socket: kube-scheduler's client keeps idle connections for up to
90 s and reuses them, so one idle past uvicorn's default keep-alive (5 s) must still answer;
and the routes a person uses (/healthz, /readyz, the explain API) on the same connection."""

from __future__ import annotations

import asyncio
import socket

import orjson
from hami_common.telemetry import in_memory_tracing
from hami_extender.app import create_app
from hami_extender.server import KEEP_ALIVE_SECONDS, build_server
from hami_extender.settings import ExtenderSettings
from hami_extender.testing import FakeApi


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
    method: str = "GET", body: bytes = b"",
) -> tuple[int, bytes]:  # fmt: skip
    """One request on an open connection: (status, body), or (0, b"") when the server closed
    it."""
    head = f"{method} {path} HTTP/1.1\r\nHost: extender\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return 0, b""
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    return int(head.split(b" ")[1]), await reader.readexactly(length)


async def _scenario(
    idle: float, requests: list[tuple[str, str, bytes]] | None = None
) -> list[tuple[int, bytes]]:
    """/healthz, an idle pause, the explain API, /readyz until ready, then ``requests``, all on
    one connection."""
    settings = ExtenderSettings(host="127.0.0.1", port=0, max_request_bytes=1024)
    provider, _ = in_memory_tracing("hami-extender")
    app = create_app(settings, client=FakeApi().client(), tracer_provider=provider)
    server = build_server(settings, app)
    serving = asyncio.create_task(server.serve())
    answers: list[tuple[int, bytes]] = []
    try:
        async with asyncio.timeout(60):
            while not server.started:  # uvicorn has only a flag  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            sock = next(s for srv in server.servers for s in srv.sockets
                        if s.family == socket.AF_INET)  # fmt: skip
            reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            answers.append(await _get(reader, writer, "/healthz"))
            await asyncio.sleep(idle)  # longer than uvicorn's default keep-alive
            answers.append(await _get(reader, writer, "/api/v1/explain/ns/nobody"))
            for _ in range(200):  # the state (nothing) loads from the fake API
                status = await _get(reader, writer, "/readyz")
                if status[0] == 200:
                    break
                await asyncio.sleep(0.05)
            answers.append(status)
            for method, path, body in requests or []:
                answers.append(await _get(reader, writer, path, method, body))
            writer.close()
    finally:
        server.should_exit = True
        await serving
    return answers


def test_an_idle_connection_stays_usable_and_serves_every_route() -> None:
    healthz, explain, readyz = asyncio.run(_scenario(idle=6.5))[:3]
    assert healthz == (200, b"ok")
    assert explain[0] == 404
    assert "no decision recorded for pod ns/nobody" in orjson.loads(explain[1])["error"]
    assert readyz == (200, b"ok")
    assert KEEP_ALIVE_SECONDS > 90


def test_the_verbs_answer_over_http_and_keep_the_connection() -> None:
    """/filter and /bind are served straight from ASGI: their edge cases (no body, a body over
    the limit, a wrong method, garbage) answer as the framework's routes did, and the
    connection stays usable after each."""
    pod = {"metadata": {"uid": "u", "name": "p", "namespace": "ns"}, "spec": {"containers": []}}
    plain = orjson.dumps({"Pod": pod, "NodeNames": ["n1", "n2"]})
    answers = asyncio.run(_scenario(idle=0, requests=[
        ("POST", "/filter", b""),
        ("POST", "/filter", b"x" * 2000),
        ("GET", "/filter", b""),
        ("POST", "/bind", b"{"),
        ("POST", "/filter", plain),
        ("POST", "/nowhere", b"{}"),
    ]))[3:]  # fmt: skip
    empty, big, get, garbage, passthrough, nowhere = answers
    assert empty == (400, b"Please send a request body")
    assert big[0] == 200
    assert (
        orjson.loads(big[1])["Error"]
        == "request body exceeds 1024 bytes; raise --max-request-bytes"
    )
    assert get[0] == 405
    assert garbage[0] == 200
    assert "not JSON" in orjson.loads(garbage[1])["Error"]
    assert passthrough[0] == 200
    assert orjson.loads(passthrough[1])["NodeNames"] == ["n1", "n2"]
    assert nowhere[0] == 404
