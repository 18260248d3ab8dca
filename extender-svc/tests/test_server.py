"""The served app over a real socket: kube-scheduler's client keeps idle connections for up to
90 s and reuses them, so one idle past uvicorn's default keep-alive (5 s) must still answer;
the routes a person uses (/healthz, /readyz, the explain API) on the same connection; a
stalled request cut at its deadline; a body nested too deep answered, not a 500; over TLS the
verbs need kube-scheduler's client certificate; and the listening rule."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hami_common.k8s.testing import FakeApiServer
from hami_common.serving import bound_port, wait_started
from hami_common.settings import SettingsError
from hami_common.telemetry import in_memory_tracing
from hami_e2e.pki import ServingPki, serving_pki
from hami_extender.app import create_app
from hami_extender.server import KEEP_ALIVE_SECONDS, build_server, certificate, metrics_server
from hami_extender.settings import ExtenderSettings


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
    idle: float, requests: list[tuple[str, str, bytes]] | None = None,
    settings: ExtenderSettings | None = None,
) -> list[tuple[int, bytes]]:  # fmt: skip
    """/healthz, an idle pause, the explain API, /readyz until ready, then ``requests``, all on
    one connection."""
    settings = settings or ExtenderSettings(host="127.0.0.1", port=0, max_request_bytes=1024)
    provider, _ = in_memory_tracing("hami-extender")
    app = create_app(settings, client=FakeApiServer().client(), tracer_provider=provider)
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


def test_a_body_nested_too_deep_is_an_error_in_the_result_not_a_500() -> None:
    deep = b'{"Pod":{"metadata":{"uid":"u","name":"p"},"x":' + b"[" * 1000 + b"]" * 1000 + b"}}"
    settings = ExtenderSettings(host="127.0.0.1", port=0)
    answers = asyncio.run(_scenario(0, [("POST", "/filter", deep)], settings))
    status, body = answers[3]
    assert status == 200
    assert "JSON nested deeper than 100 levels" in orjson.loads(body)["Error"]


def test_a_stalled_request_is_cut_at_its_deadline() -> None:
    settings = ExtenderSettings(host="127.0.0.1", port=0, read_body_timeout_seconds=0.5)

    async def go() -> bytes:
        app = create_app(settings, client=FakeApiServer().client(),
                         tracer_provider=in_memory_tracing("hami-extender")[0])  # fmt: skip
        server = build_server(settings, app)
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(30):
                await wait_started(server, serving)
                reader, writer = await asyncio.open_connection("127.0.0.1", bound_port(server))
                writer.write(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
                data = await reader.read()
                writer.close()
                return data
        finally:
            server.should_exit = True
            await serving

    assert asyncio.run(go()).startswith(b"HTTP/1.1 408 Request Timeout")


def _tls_settings(pki: ServingPki, **extra: Any) -> ExtenderSettings:
    fields: dict[str, Any] = {
        "host": "127.0.0.1", "port": 0, "cert_file": pki.server.cert, "key_file": pki.server.key,
        "client_ca_file": pki.ca_file,
    }  # fmt: skip
    return ExtenderSettings(**{**fields, **extra})


def test_over_tls_the_verbs_need_the_client_certificate_and_health_does_not(
    tmp_path: Path,
) -> None:
    pki = serving_pki(tmp_path, "ext", client_name="system:kube-scheduler")
    settings = _tls_settings(pki)
    pod = {"metadata": {"uid": "u", "name": "p", "namespace": "ns"}, "spec": {"containers": []}}
    body = orjson.dumps({"Pod": pod, "NodeNames": ["n1"]})

    async def go() -> list[tuple[int, bytes]]:
        tls = certificate(settings)
        app = create_app(settings, client=FakeApiServer().client(),
                         tracer_provider=in_memory_tracing("hami-extender")[0])  # fmt: skip
        server = build_server(settings, app, tls)
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(30):
                await wait_started(server, serving)
                url = f"https://127.0.0.1:{bound_port(server)}"
                verify = ssl.create_default_context(cafile=str(pki.ca_file))
                async with httpx.AsyncClient(verify=verify, base_url=url) as anonymous:
                    refused = await anonymous.post("/filter", content=body)
                    health = await anonymous.get("/healthz")
                verify.load_cert_chain(pki.client.cert, pki.client.key)
                async with httpx.AsyncClient(verify=verify, base_url=url) as scheduler:
                    for _ in range(200):  # the state (nothing) loads from the fake API
                        if (await scheduler.get("/readyz")).status_code == 200:
                            break
                        await asyncio.sleep(0.05)
                    served = await scheduler.post("/filter", content=body)
                return [(r.status_code, r.content) for r in (refused, health, served)]
        finally:
            server.should_exit = True
            await serving

    refused, health, served = asyncio.run(go())
    assert refused[0] == 403
    assert b"client certificate signed by the extender's --client-ca-file" in refused[1]
    assert health == (200, b"ok")
    assert served[0] == 200
    assert orjson.loads(served[1])["NodeNames"] == ["n1"]


def test_the_listening_rule_and_the_tls_flags(tmp_path: Path) -> None:
    pki = serving_pki(tmp_path, "ext")
    assert certificate(ExtenderSettings()) is None  # loopback, plain HTTP
    assert certificate(_tls_settings(pki, host="0.0.0.0")) is not None
    cases = {
        "--host 0.0.0.0 with no TLS": (ExtenderSettings(host="0.0.0.0"), "host (--host 0.0.0.0): "
            "listening beyond loopback exposes /filter and /bind (which reserve devices and bind "
            "any pod) to the network, so it needs --cert-file, --key-file, --client-ca-file; set "
            "them, or listen on 127.0.0.1"),
        "no client CA": (_tls_settings(pki, host="::", client_ca_file=None),
                         "so it needs --client-ca-file; set it, or listen on 127.0.0.1"),
        "a key without its certificate": (ExtenderSettings(key_file=pki.server.key),
                                          "set both --cert-file and --key-file"),
        "a client CA without TLS": (ExtenderSettings(client_ca_file=pki.ca_file),
                                    "client_ca_file (--client-ca-file) needs TLS"),
    }  # fmt: skip
    for what, (settings, message) in cases.items():
        with pytest.raises(SettingsError) as caught:
            certificate(settings)
        assert message in caught.value.problems[0], what


def test_metrics_alone_on_the_metrics_port() -> None:
    """HAMi's users scrape the scheduler's metrics on their own port (9395): /metrics there,
    with the build info, and nothing else (no verb, no UI)."""

    async def go() -> tuple[int, str, int]:
        settings = ExtenderSettings(host="127.0.0.1", port=0, metrics_port=0)
        provider, _ = in_memory_tracing("hami-extender")
        app = create_app(settings, client=FakeApiServer().client(), tracer_provider=provider)
        main, metrics = build_server(settings, app), metrics_server(settings, app, None)
        assert metrics is not None
        tasks = [asyncio.create_task(main.serve()), asyncio.create_task(metrics.serve())]
        try:
            async with asyncio.timeout(30):
                await wait_started(main, tasks[0])
                await wait_started(metrics, tasks[1])
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bound_port(metrics)}") as h:
                scraped = await h.get("/metrics")
                verb = await h.post("/filter", content=b"{}")
            return scraped.status_code, scraped.text, verb.status_code
        finally:
            main.should_exit = metrics.should_exit = True
            await asyncio.gather(*tasks)

    status, text, verb = asyncio.run(go())
    assert status == 200
    assert "hami_extender_filter_duration_seconds_bucket" in text
    assert 'hami_build_info{build_date="",compiler="cpython' in text
    assert verb == 404


def test_no_metrics_port_with_minus_one() -> None:

    settings = ExtenderSettings(metrics_port=-1)
    provider, _ = in_memory_tracing("hami-extender")
    app = create_app(settings, client=FakeApiServer().client(), tracer_provider=provider)
    assert metrics_server(settings, app, None) is None
