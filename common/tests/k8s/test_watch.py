"""list_then_watch's recovery logic over httpx.MockTransport (the real server is in e2e)."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from hami_common.k8s.backoff import Backoff
from hami_common.k8s.client import KubeClient
from hami_common.k8s.config import ClusterConfig
from hami_common.k8s.errors import Gone, ServerError
from hami_common.k8s.resources import PODS
from hami_common.k8s.watch import WatchEvent, follow, list_then_watch, watch


def pod(name: str, rv: str) -> dict[str, object]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def stream(*events: dict[str, object]) -> httpx.Response:
    return httpx.Response(200, content=b"".join(json.dumps(e).encode() + b"\n" for e in events))


def client(handler: httpx.MockTransport) -> KubeClient:
    return KubeClient(
        ClusterConfig(server="https://k8s.test"), backoff=Backoff(base=0.0), transport=handler
    )


def test_relists_on_410_and_resumes_from_bookmarks() -> None:
    requests: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        requests.append(req)
        watching = req.url.params.get("watch") == "true"
        rv = req.url.params.get("resourceVersion")
        if not watching:
            lists = sum(1 for r in requests if "watch" not in r.url.params)
            version = "5" if lists == 1 else "20"
            return httpx.Response(200, json={"metadata": {"resourceVersion": version}, "items": []})
        if rv == "5":  # first watch: an event, a bookmark, then the server ends the watch
            return stream(
                {"type": "ADDED", "object": pod("a", "6")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
            )
        if rv == "9":  # resumed from the bookmark; the version has expired meanwhile
            status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
            return stream({"type": "ERROR", "object": status})
        assert rv == "20"
        return stream({"type": "DELETED", "object": pod("a", "21")})

    async def main() -> list[WatchEvent]:
        seen: list[WatchEvent] = []
        async with client(httpx.MockTransport(handler)) as kube:
            async for event in list_then_watch(kube, PODS, namespace="ns"):
                seen.append(event)
                if event.type == "DELETED":
                    break
        return seen

    seen = asyncio.run(main())
    assert [e.type for e in seen] == ["SYNC", "ADDED", "SYNC", "DELETED"]
    assert seen[2].resource_version == "20"
    watch_rvs = [r.url.params["resourceVersion"] for r in requests if "watch" in r.url.params]
    assert watch_rvs == ["5", "9", "20"]
    assert requests[1].url.params["allowWatchBookmarks"] == "true"


def test_watch_raises_gone_for_an_http_410() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(410, json={"kind": "Status", "code": 410, "reason": "Expired"})

    async def main() -> None:
        async with client(httpx.MockTransport(handler)) as kube:
            async for _ in watch(kube, PODS, resource_version="1"):
                pass

    with pytest.raises(Gone):
        asyncio.run(main())


def test_garbage_in_the_stream_is_a_server_error() -> None:
    async def main() -> None:
        async with client(
            httpx.MockTransport(lambda _: httpx.Response(200, text="{nope\n"))
        ) as kube:
            async for _ in watch(kube, PODS):
                pass

    with pytest.raises(ServerError, match="not JSON"):
        asyncio.run(main())


async def _silence() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()
    yield b""


def test_follow_starts_over_after_a_failure_and_skips_bookmarks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A list that fails (403: no retry inside the client) is logged and retried after the
    backoff; the next list loads, its events reach ``apply``, bookmarks do not."""
    lists = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal lists
        if req.url.params.get("watch") != "true":
            lists += 1
            assert req.url.params.get("fieldSelector") == "spec.nodeName=n1"
            if lists == 1:
                denied = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no"}
                return httpx.Response(403, json=denied)
            return httpx.Response(200, json={"metadata": {"resourceVersion": "5"}, "items": []})
        if req.url.params.get("resourceVersion") != "5":
            return httpx.Response(200, content=_silence())  # resumed: nothing more happens
        return stream(
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}},
            {"type": "ADDED", "object": pod("a", "7")},
        )

    async def main() -> list[tuple[str, object]]:
        seen: list[tuple[str, object]] = []
        done = asyncio.Event()

        def apply(kind: str, obj: dict[str, object]) -> None:
            seen.append((kind, obj.get("metadata", {}) if kind != "SYNC" else obj["items"]))
            if kind == "ADDED":
                done.set()

        async with client(httpx.MockTransport(handler)) as kube:
            task = asyncio.create_task(
                follow(
                    kube,
                    PODS,
                    apply,
                    what="test watch",
                    log=logging.getLogger("test.follow"),
                    backoff=Backoff(base=0.0),
                    field_selector="spec.nodeName=n1",
                )
            )
            try:
                await asyncio.wait_for(done.wait(), 5)
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        return seen

    with caplog.at_level(logging.WARNING, logger="test.follow"):
        seen = asyncio.run(main())
    assert seen[:2] == [("SYNC", []), ("ADDED", {"name": "a", "resourceVersion": "7"})]
    assert lists == 2
    assert "test watch failed (1 in a row)" in caplog.text
