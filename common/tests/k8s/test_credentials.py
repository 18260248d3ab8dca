"""Credentials over time: token files re-read on a period and after a 401, exec plugins run in a
thread once for many requests, expired or refused credentials replaced, rotated certificates
picked up. The real API server side is e2e/tests/test_credentials.py."""

import asyncio
import datetime
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hami_common.k8s import credentials as credentials_mod
from hami_common.k8s.backoff import Backoff
from hami_common.k8s.client import KubeClient
from hami_common.k8s.config import ClusterConfig, ConfigError, ExecPlugin
from hami_common.k8s.credentials import Credentials, CredentialsError
from hami_common.k8s.errors import ApiError, Unauthorized
from hami_common.k8s.resources import NODES


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = credentials_mod.read_token_file

    def spy(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(credentials_mod, "read_token_file", spy)
    return seen


def test_a_token_file_is_read_once_a_period_not_per_request(
    tmp_path: Path, reads: list[Path]
) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    clock = Clock()
    creds = Credentials(ClusterConfig(server="https://k", token_file=token), clock=clock)

    async def main() -> None:
        for _ in range(50):
            assert (await creds.authorization())[0] == "Bearer one"
        token.write_text("two")
        clock.now += 59
        assert (await creds.authorization())[0] == "Bearer one"
        clock.now += 2
        assert (await creds.authorization())[0] == "Bearer two"
        token.unlink()  # a failed re-read keeps the last token
        clock.now += 61
        assert (await creds.authorization())[0] == "Bearer two"

    asyncio.run(main())
    assert len(reads) == 3


def test_an_unreadable_token_file_at_the_start_is_a_credentials_error(tmp_path: Path) -> None:
    cfg = ClusterConfig(server="https://k", token_file=tmp_path / "gone", source="kubeconfig x")
    with pytest.raises(CredentialsError, match=r"kubeconfig x: cannot read the token file .*gone"):
        asyncio.run(Credentials(cfg).authorization())
    (tmp_path / "gone").write_text("")
    with pytest.raises(CredentialsError, match="is empty"):
        asyncio.run(Credentials(cfg).authorization())


def test_credentials_error_is_both_a_config_error_and_an_api_error() -> None:
    exc = CredentialsError("the plugin failed")
    assert isinstance(exc, ConfigError)
    assert isinstance(exc, ApiError)
    assert str(exc) == "the plugin failed"


def serve(accepted: set[str], seen: list[str | None]) -> httpx.MockTransport:
    def handler(req: httpx.Request) -> httpx.Response:
        auth = req.headers.get("Authorization")
        seen.append(auth)
        if auth in accepted:
            return httpx.Response(200, json={"kind": "Node", "metadata": {"name": "n"}})
        return httpx.Response(401, json={"kind": "Status", "code": 401, "reason": "Unauthorized"})

    return httpx.MockTransport(handler)


def test_a_401_re_reads_the_token_file_once(tmp_path: Path, reads: list[Path]) -> None:
    token = tmp_path / "token"
    token.write_text("old")
    seen: list[str | None] = []
    cfg = ClusterConfig(server="https://k", token_file=token)

    async def main() -> None:
        kube = KubeClient(cfg, transport=serve({"Bearer new"}, seen), backoff=Backoff(base=0))
        async with kube:
            with pytest.raises(Unauthorized) as info:
                await kube.get(NODES, "n")  # the file still holds the refused token
            assert "refused our credentials" in str(info.value)
            token.write_text("new")
            await kube.get(NODES, "n")  # refused, re-read, accepted
            await kube.get(NODES, "n")

    asyncio.run(main())
    assert seen == ["Bearer old", "Bearer old", "Bearer new", "Bearer new"]
    assert len(reads) == 3


def test_a_static_token_is_not_retried_after_a_401() -> None:
    seen: list[str | None] = []

    async def main() -> None:
        cfg = ClusterConfig(server="https://k", token="bad")
        async with KubeClient(cfg, transport=serve(set(), seen)) as kube:
            with pytest.raises(Unauthorized):
                await kube.get(NODES, "n")

    asyncio.run(main())
    assert seen == ["Bearer bad"]


def exec_plugin(
    tmp_path: Path, status: dict[str, Any] | None = None, *, api: str = "v1", **extra: Any
) -> tuple[ExecPlugin, Path]:
    """A plugin script that prints ``out.json`` and appends a line to ``runs`` per run."""
    version = f"client.authentication.k8s.io/{api}"
    out, runs = tmp_path / "out.json", tmp_path / "runs"
    doc = {"apiVersion": version, "kind": "ExecCredential", "status": status or {}}
    out.write_text(json.dumps(doc))
    script = tmp_path / "plugin.sh"
    script.write_text(f'#!/bin/sh\necho run >> "{runs}"\nsleep "${{DELAY:-0}}"\ncat "{out}"\n')
    script.chmod(0o755)
    spec = {"apiVersion": version, "command": "./plugin.sh", **extra}
    plugin = ExecPlugin(spec=spec, base_path=str(tmp_path), user="me", source="kubeconfig kc")
    return plugin, runs


def runs_of(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


@pytest.mark.parametrize("api", ["v1", "v1beta1"])
def test_an_exec_plugin_runs_once_in_a_thread_for_concurrent_requests(
    tmp_path: Path, api: str
) -> None:
    env = [{"name": "DELAY", "value": "0.3"}]
    plugin, runs = exec_plugin(tmp_path, {"token": "from-exec"}, api=api, env=env)
    seen: list[str | None] = []

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        cfg = ClusterConfig(server="https://k", exec_plugin=plugin)
        async with KubeClient(cfg, transport=serve({"Bearer from-exec"}, seen)) as kube:
            await asyncio.gather(*(kube.get(NODES, "n") for _ in range(20)))
        tick.cancel()
        return ticks

    ticks = asyncio.run(main())
    assert runs_of(runs) == 1
    assert seen == ["Bearer from-exec"] * 20
    assert ticks >= 10  # the event loop kept running while the plugin slept 0.3 s


def test_an_exec_credential_is_replaced_when_it_expires_or_is_refused(tmp_path: Path) -> None:
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    stamp = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    plugin, runs = exec_plugin(tmp_path, {"token": "t1", "expirationTimestamp": stamp})
    out = tmp_path / "out.json"
    seen: list[str | None] = []

    def prints(token: str) -> None:
        doc = json.loads(out.read_text())
        doc["status"] = {"token": token}
        out.write_text(json.dumps(doc))

    async def main() -> None:
        accepted = {"Bearer t1", "Bearer t2"}
        cfg = ClusterConfig(server="https://k", exec_plugin=plugin)
        async with KubeClient(cfg, transport=serve(accepted, seen)) as kube:
            await kube.get(NODES, "n")  # t1 expires within the 10 s leeway: next call re-runs
            prints("t2")
            await kube.get(NODES, "n")
            await kube.get(NODES, "n")  # t2 has no expiry: kept
            prints("t3")
            accepted.clear()
            accepted.add("Bearer t3")  # the server now refuses t2
            await kube.get(NODES, "n")  # refused with t2: run again, t3 accepted

    asyncio.run(main())
    assert seen == ["Bearer t1", "Bearer t2", "Bearer t2", "Bearer t2", "Bearer t3"]
    assert runs_of(runs) == 3


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", r"the exec plugin `\./nowhere` could not be started: No such file"),
        ("failing", r"`\./plugin\.sh` failed: exec: process returned 3\. .*line 40\n.*line 59$"),
        ("not-json", "failed: exec: failed to decode process output"),
        ("wrong-version", "plugin api version client.authentication.k8s.io/v1beta1 does not"),
        ("empty", "neither status.token nor status.clientCertificateData"),
        ("key-alone", "a client certificate without its key, or a key alone"),
        ("bad-expiry", "bad expirationTimestamp"),
    ],
)
def test_exec_plugin_failures_say_what_to_fix(tmp_path: Path, setup: str, message: str) -> None:
    hint = "install it with: brew install thing"
    plugin, _ = exec_plugin(tmp_path, {"token": "x"}, installHint=hint)
    script, out = tmp_path / "plugin.sh", tmp_path / "out.json"
    if setup == "missing":
        plugin = ExecPlugin(
            spec={**plugin.spec, "command": "./nowhere"}, base_path=str(tmp_path), user="me",
            source="kubeconfig kc",
        )  # fmt: skip
    elif setup == "failing":
        lines = "".join(f"echo line {i} >&2\n" for i in range(60))
        script.write_text(f"#!/bin/sh\n{lines}exit 3\n")
    elif setup == "not-json":
        out.write_text("hello")
    elif setup == "wrong-version":
        out.write_text(out.read_text().replace("/v1", "/v1beta1"))
    else:
        status = {
            "empty": {},
            "key-alone": {"token": "x", "clientKeyData": "k"},
            "bad-expiry": {"token": "x", "expirationTimestamp": "tomorrow"},
        }[setup]
        doc = json.loads(out.read_text())
        out.write_text(json.dumps({**doc, "status": status}))
    cfg = ClusterConfig(server="https://k", exec_plugin=plugin)
    with pytest.raises(CredentialsError) as info:
        asyncio.run(Credentials(cfg).authorization())
    text, head = str(info.value), "kubeconfig kc: user 'me': the exec plugin"
    assert text.startswith(head)
    assert text.endswith(f"; {hint}")
    assert re.search(message, text.removesuffix(f"; {hint}"), re.DOTALL), text
    assert len(text) < 1100  # the stderr tail, not all of it


def test_a_failed_run_is_shared_by_the_requests_that_waited_on_it(tmp_path: Path) -> None:
    plugin, runs = exec_plugin(tmp_path, env=[{"name": "DELAY", "value": "0.2"}])
    creds = Credentials(ClusterConfig(server="https://k", exec_plugin=plugin))

    async def main() -> list[BaseException | tuple[str | None, int]]:
        return await asyncio.gather(
            *(creds.authorization() for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(r, CredentialsError) for r in results)
    assert runs_of(runs) == 1


def test_an_exec_client_certificate_makes_new_connections(
    tmp_path: Path, pem_pair: tuple[bytes, bytes]
) -> None:
    cert, key = pem_pair
    status = {"clientCertificateData": cert.decode(), "clientKeyData": key.decode()}
    plugin, _ = exec_plugin(tmp_path, status)
    creds = Credentials(ClusterConfig(server="https://k", exec_plugin=plugin))
    assert asyncio.run(creds.authorization()) == (None, 1)
    assert creds.tls_version == 1
    creds.ssl_context()  # loads the plugin's certificate and key


def write_pair(tmp_path: Path, pair: tuple[bytes, bytes], mtime: float) -> None:
    for name, data in zip(("me.crt", "me.key"), pair, strict=True):
        (tmp_path / name).write_bytes(data)
        os.utime(tmp_path / name, (mtime, mtime))


def test_rotated_client_certificate_files_are_picked_up(
    tmp_path: Path, pem_pair: tuple[bytes, bytes]
) -> None:
    write_pair(tmp_path, pem_pair, time.time() - 100)
    cfg = ClusterConfig(
        server="https://k", cert_file=tmp_path / "me.crt", key_file=tmp_path / "me.key"
    )

    async def main() -> None:
        kube = KubeClient(cfg, refresh_interval=0.0)
        first = kube._connections.current
        async with kube._connections.lease() as http:
            assert http is first
            write_pair(tmp_path, pem_pair, time.time())  # rotated (same content, new mtime)
            async with kube._connections.lease() as newer:
                assert newer is not first
                assert not first.is_closed  # the request in flight finishes on it
        assert first.is_closed
        async with kube._connections.lease() as again:
            assert again is newer
        (tmp_path / "me.crt").write_bytes(b"half-written")  # a broken rotation is not used
        async with kube._connections.lease() as kept:
            assert kept is newer
        await kube.aclose()
        assert newer.is_closed

    asyncio.run(main())


def test_checks_of_the_files_are_periodic(
    tmp_path: Path, pem_pair: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pair(tmp_path, pem_pair, time.time() - 100)
    clock = Clock()
    cfg = ClusterConfig(
        server="https://k", cert_file=tmp_path / "me.crt", key_file=tmp_path / "me.key"
    )
    creds = Credentials(cfg, clock=clock)
    stat_calls: list[Any] = []
    real_stat: Callable[..., Any] = os.stat

    def spy(path: Any) -> Any:
        stat_calls.append(path)
        return real_stat(path)

    monkeypatch.setattr(credentials_mod.os, "stat", spy)
    write_pair(tmp_path, pem_pair, time.time())
    assert not any(creds.check_files() for _ in range(100))
    assert stat_calls == []
    clock.now += 61
    assert creds.check_files()
    assert creds.tls_version == 1
    assert len(stat_calls) == 2  # no CA file: the certificate and the key
