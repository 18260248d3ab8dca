"""KubeClient's HTTP behaviour (retries, errors, paging, headers) over httpx.MockTransport.

The real API server is exercised by e2e/tests/test_adapter.py; these cover what a healthy
server cannot be made to do on demand (503s, dropped connections).
"""

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest
from hami_common.k8s import client as client_mod
from hami_common.k8s.backoff import Backoff
from hami_common.k8s.client import KubeClient
from hami_common.k8s.config import ClusterConfig
from hami_common.k8s.errors import (
    ConnectionFailed,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
)
from hami_common.k8s.resources import NODES, PODS

Handler = Callable[[httpx.Request], httpx.Response]


def run(
    handler: Handler, body: Callable[[KubeClient], Coroutine[Any, Any, Any]], retries: int = 3
) -> Any:
    async def main() -> Any:
        cfg = ClusterConfig(server="https://k8s.test", token="tok")
        kube = KubeClient(
            cfg, backoff=Backoff(retries=retries, base=0.0), transport=httpx.MockTransport(handler)
        )
        async with kube:
            return await body(kube)

    return asyncio.run(main())


def status(code: int, reason: str, **headers: str) -> httpx.Response:
    doc = {"kind": "Status", "code": code, "reason": reason, "message": reason.lower()}
    return httpx.Response(code, json=doc, headers=headers)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(client_mod.asyncio, "sleep", fake_sleep)
    return recorded


def test_get_sends_token_and_decodes() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"kind": "Pod", "metadata": {"name": "p"}})

    pod = run(handler, lambda k: k.get(PODS, "p", namespace="ns"))
    assert pod["metadata"]["name"] == "p"
    assert seen[0].url.path == "/api/v1/namespaces/ns/pods/p"
    assert seen[0].headers["Authorization"] == "Bearer tok"


def test_503_is_retried_honouring_retry_after(sleeps: list[float]) -> None:
    answers = [
        status(503, "ServiceUnavailable", **{"Retry-After": "2"}),
        httpx.Response(200, json={}),
    ]
    assert run(lambda _: answers.pop(0), lambda k: k.create(PODS, {}, namespace="ns")) == {}
    assert sleeps == [2.0]


def test_429_gives_up_after_the_retries(sleeps: list[float]) -> None:
    calls = 0

    def handler(_: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return status(429, "TooManyRequests", **{"Retry-After": "1"})

    with pytest.raises(TooManyRequests) as err:
        run(handler, lambda k: k.get(NODES, "n"), retries=2)
    assert calls == 3
    assert err.value.retry_after == 1.0
    assert sleeps == [1.0, 1.0]


def test_a_write_is_not_retried_on_500(sleeps: list[float]) -> None:
    calls = 0

    def handler(_: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return status(500, "InternalError")

    with pytest.raises(ServerError):
        run(handler, lambda k: k.patch(PODS, "p", {"a": 1}, namespace="ns"))
    assert calls == 1
    assert sleeps == []


def test_not_found_is_raised_at_once() -> None:
    with pytest.raises(NotFound, match="HTTP 404 NotFound"):
        run(lambda _: status(404, "NotFound"), lambda k: k.get(NODES, "n"))


def test_connection_refused_becomes_connection_failed_and_is_retried(sleeps: list[float]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    with pytest.raises(ConnectionFailed):
        run(handler, lambda k: k.create(PODS, {}, namespace="ns"), retries=2)
    assert len(sleeps) == 2


def test_a_read_error_on_a_write_is_a_transport_error_not_retried(sleeps: list[float]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=req)

    with pytest.raises(TransportError) as err:
        run(handler, lambda k: k.delete(PODS, "p", namespace="ns"))
    assert not isinstance(err.value, ConnectionFailed)
    assert sleeps == []


def test_a_non_json_answer_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="not JSON"):
        run(lambda _: httpx.Response(200, text="<html>"), lambda k: k.get(NODES, "n"))


def test_request_bytes_returns_the_body_as_sent_and_retries_a_broken_read(
    sleeps: list[float],
) -> None:
    body = b'{"kind": "PodList", "items": []}\n'

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield body[:5]
            raise httpx.ReadError("reset")

    answers = [
        httpx.Response(200, stream=Broken()),
        httpx.Response(200, content=gzip.compress(body), headers={"Content-Encoding": "gzip"}),
    ]
    got = run(lambda _: answers.pop(0), lambda k: k.request_bytes("GET", "/api/v1/pods"))
    assert got == body
    assert len(sleeps) == 1
    with pytest.raises(NotFound):
        run(lambda _: status(404, "NotFound"), lambda k: k.request_bytes("GET", "/api/v1/x"))


def test_list_follows_continue_tokens_and_asks_for_metadata() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if "continue" not in req.url.params:
            meta = {"resourceVersion": "10", "continue": "t1", "remainingItemCount": 1}
            return httpx.Response(200, json={"metadata": meta, "items": [{"n": 1}]})
        return httpx.Response(
            200, json={"metadata": {"resourceVersion": "10"}, "items": [{"n": 2}]}
        )

    listed = run(handler, lambda k: k.list_metadata(PODS, label_selector="a=b", page_size=1))
    assert listed["items"] == [{"n": 1}, {"n": 2}]
    assert listed["metadata"] == {"resourceVersion": "10"}
    assert seen[0].url.params["limit"] == "1"
    assert seen[0].url.params["labelSelector"] == "a=b"
    assert seen[1].url.params["continue"] == "t1"
    assert "as=PartialObjectMetadataList" in seen[0].headers["Accept"]


@pytest.mark.parametrize(
    ("patch_type", "patch", "content_type"),
    [
        ("merge", {"a": 1}, "application/merge-patch+json"),
        ("strategic", {"a": 1}, "application/strategic-merge-patch+json"),
        ("json", [{"op": "add", "path": "/a", "value": 1}], "application/json-patch+json"),
    ],
)
def test_patch_content_types(patch_type: Any, patch: Any, content_type: str) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={})

    run(handler, lambda k: k.patch(NODES, "n", patch, patch_type=patch_type, field_manager="me"))
    assert seen[0].method == "PATCH"
    assert seen[0].headers["Content-Type"] == content_type
    assert json.loads(seen[0].content) == patch
    assert seen[0].url.params["fieldManager"] == "me"


def test_metadata_only_get_and_patch_ask_for_partial_object_metadata() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"kind": "PartialObjectMetadata", "metadata": {}})

    async def calls(k: KubeClient) -> None:
        await k.get(NODES, "n", metadata_only=True)
        await k.patch(NODES, "n", {"metadata": {}}, metadata_only=True)
        await k.get(NODES, "n")

    run(handler, calls)
    meta = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
    assert [r.headers["Accept"] for r in seen] == [meta, meta, "application/json"]
    assert seen[1].headers["Content-Type"] == "application/merge-patch+json"


def test_json_patch_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="list of operations"):
        run(
            lambda _: httpx.Response(200, json={}),
            lambda k: k.patch(NODES, "n", {}, patch_type="json"),
        )


def test_delete_sends_preconditions() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={})

    run(handler, lambda k: k.delete(PODS, "p", namespace="ns", resource_version="7"))
    assert json.loads(seen[0].content)["preconditions"] == {"resourceVersion": "7"}


def test_an_expired_continue_token_restarts_the_list_from_the_first_page() -> None:
    seen: list[str | None] = []

    def handler(req: httpx.Request) -> httpx.Response:
        token = req.url.params.get("continue")
        seen.append(token)
        if token is None:
            meta = {"resourceVersion": str(len(seen)), "continue": f"t{len(seen)}"}
            return httpx.Response(200, json={"metadata": meta, "items": [{"page": 1}]})
        if token == "t1":
            return status(410, "Expired")
        return httpx.Response(
            200, json={"metadata": {"resourceVersion": "3"}, "items": [{"page": 2}]}
        )

    listed = run(handler, lambda k: k.list(PODS))
    assert seen == [None, "t1", None, "t3"]
    assert listed["items"] == [{"page": 1}, {"page": 2}]
    assert listed["metadata"]["resourceVersion"] == "3"


def test_a_request_still_in_flight_when_the_client_closes_ends_cleanly() -> None:
    """A watch still open at shutdown (the client closed under it) used to fail its lease's
    bookkeeping with a KeyError; the request itself fails as a closed client's does."""

    async def main() -> None:
        cfg = ClusterConfig(server="https://k8s.test", token="tok")
        kube = KubeClient(cfg, transport=httpx.MockTransport(lambda _: httpx.Response(200)))
        async with kube._connections.lease() as http:
            await kube.aclose()
            assert http.is_closed
        async with kube._connections.lease() as again:  # bookkeeping intact after the close
            assert again is kube._connections.current

    asyncio.run(main())
