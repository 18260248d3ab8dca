"""Real TLS: uvicorn serving the app, a real TLS client, the certificate replaced on disk."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hami_common.settings import SettingsError
from hami_common.telemetry import in_memory_tracing
from hami_webhook.app import create_app
from hami_webhook.namespaces import InMemoryNamespaceSource
from hami_webhook.quota import InMemoryQuotaSource
from hami_webhook.server import KEEP_ALIVE_SECONDS, bound_port, build_server, run, wait_started
from hami_webhook.settings import WebhookSettings
from hami_webhook.testing import TlsPair, container, pod, review


def _install(pair: TlsPair, cert_file: Path, key_file: Path) -> None:
    """Replace the served files the way a Secret volume update does: new files, atomic rename."""
    for source, target in ((pair.key_file, key_file), (pair.cert_file, cert_file)):
        staging = target.with_suffix(".new")
        shutil.copyfile(source, staging)
        os.replace(staging, target)


async def _post(port: int, ca_file: Path) -> httpx.Response:
    verify = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(verify=verify, base_url=f"https://127.0.0.1:{port}") as client:
        return await client.post(
            "/webhook", json=review(pod(container(limits={"nvidia.com/gpu": "1"})))
        )


async def _scenario(
    cert_file: Path, key_file: Path, old: TlsPair, new: TlsPair, broken: TlsPair
) -> list[Any]:
    settings = WebhookSettings.load(
        [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--cert-file",
            str(cert_file),
            "--key-file",
            str(key_file),
        ]
    )
    provider, _ = in_memory_tracing("hami-webhook")
    app = create_app(
        settings,
        tracer_provider=provider,
        quota=InMemoryQuotaSource(),
        namespaces=InMemoryNamespaceSource(),
    )
    server, certificate = build_server(settings, app)
    serving = asyncio.create_task(run(server, certificate, interval=0.02))
    results: list[Any] = []
    try:
        async with asyncio.timeout(20):
            await wait_started(server, serving)
            port = bound_port(server)
            first = await _post(port, old.ca_file)
            results.append((first.status_code, first.json()["response"]["allowed"]))

            # a half-written update (new certificate, old key) is not taken: old one still served
            shutil.copyfile(broken.cert_file, cert_file)
            await asyncio.sleep(0.2)
            results.append(certificate.reloads)
            results.append((await _post(port, old.ca_file)).status_code)

            _install(new, cert_file, key_file)
            for _ in range(500):  # the watcher checks every 20 ms
                if certificate.reloads:
                    break
                await asyncio.sleep(0.02)
            results.append((await _post(port, new.ca_file)).status_code)
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await _post(port, old.ca_file)
    finally:
        server.should_exit = True
        await serving
    return results


def test_serves_tls_and_reloads_the_certificate_when_its_files_change(
    tls_pair_factory: Callable[[str], TlsPair], tmp_path: Path
) -> None:
    old, new, broken = tls_pair_factory("old"), tls_pair_factory("new"), tls_pair_factory("broken")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    _install(old, cert_file, key_file)
    results = asyncio.run(_scenario(cert_file, key_file, old, new, broken))
    assert results == [(200, True), 0, 200, 200]


def test_tls_is_required(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="set --cert-file and --key-file"):
        build_server(WebhookSettings.load([]))


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """One POST /webhook on an open connection; the response's status (0: the server closed)."""
    body = json.dumps(review(pod(container(limits={"nvidia.com/gpu": "1"})))).encode()
    writer.write(b"POST /webhook HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return 0
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    await reader.readexactly(length)
    return int(head.split(b" ")[1])


async def _idle_scenario(cert_file: Path, key_file: Path, ca_file: Path, idle: float) -> list[int]:
    settings = WebhookSettings.load(["--host", "127.0.0.1", "--port", "0", "--cert-file",
                                     str(cert_file), "--key-file", str(key_file)])  # fmt: skip
    provider, _ = in_memory_tracing("hami-webhook")
    app = create_app(settings, tracer_provider=provider, quota=InMemoryQuotaSource(),
                     namespaces=InMemoryNamespaceSource())  # fmt: skip
    server, certificate = build_server(settings, app)
    serving = asyncio.create_task(run(server, certificate, interval=5))
    statuses: list[int] = []
    try:
        async with asyncio.timeout(60):
            await wait_started(server, serving)
            context = ssl.create_default_context(cafile=str(ca_file))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", bound_port(server), ssl=context, server_hostname="127.0.0.1"
            )
            statuses.append(await _exchange(reader, writer))
            await asyncio.sleep(idle)  # longer than uvicorn's default keep-alive (5 s)
            try:
                statuses.append(await _exchange(reader, writer))
            except (asyncio.IncompleteReadError, ConnectionError):
                statuses.append(0)
            writer.close()
    finally:
        server.should_exit = True
        await serving
    return statuses


def test_an_idle_connection_stays_usable_past_the_old_keep_alive(
    tls_pair_factory: Callable[[str], TlsPair], tmp_path: Path
) -> None:
    """The API server reuses idle webhook connections for up to 90 s; one left idle past
    uvicorn's default 5 s must still answer (it used to fail with EOF)."""
    pair = tls_pair_factory("idle")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    _install(pair, cert_file, key_file)
    assert asyncio.run(_idle_scenario(cert_file, key_file, pair.ca_file, idle=6.5)) == [200, 200]
    assert KEEP_ALIVE_SECONDS > 90


async def _stalled(pair: TlsPair, tmp_path: Path) -> tuple[float, bytes]:
    """Half a request header over TLS, then nothing: what the server sends, and when."""
    settings = WebhookSettings.load([
        "--port", "0", "--cert-file", str(pair.cert_file), "--key-file", str(pair.key_file),
        "--read-header-timeout-seconds", "0.5",
    ])  # fmt: skip
    provider, _ = in_memory_tracing("hami-webhook")
    app = create_app(settings, tracer_provider=provider, quota=InMemoryQuotaSource(),
                     namespaces=InMemoryNamespaceSource())  # fmt: skip
    server, certificate = build_server(settings, app)
    serving = asyncio.create_task(run(server, certificate, interval=5))
    try:
        async with asyncio.timeout(30):
            await wait_started(server, serving)
            context = ssl.create_default_context(cafile=str(pair.ca_file))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", bound_port(server), ssl=context, server_hostname="127.0.0.1"
            )
            writer.write(b"POST /webhook HTTP/1.1\r\nHost: webh")
            began = time.monotonic()
            data = await reader.read()
            took = time.monotonic() - began
            writer.close()
    finally:
        server.should_exit = True
        await serving
    return took, data


def test_a_stalled_request_header_is_cut_at_its_deadline(
    tls_pair_factory: Callable[[str], TlsPair], tmp_path: Path
) -> None:
    took, data = asyncio.run(_stalled(tls_pair_factory("stall"), tmp_path))
    assert took < 3
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_listens_on_loopback_unless_told() -> None:
    assert WebhookSettings.load([]).host == "127.0.0.1"
