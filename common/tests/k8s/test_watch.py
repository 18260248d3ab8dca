"""list_then_watch's recovery logic over httpx.MockTransport (the real server is in e2e)."""

import asyncio
import json

import httpx
import pytest
from hami_common.k8s.backoff import Backoff
from hami_common.k8s.client import KubeClient
from hami_common.k8s.config import ClusterConfig
from hami_common.k8s.errors import Gone, ServerError
from hami_common.k8s.resources import PODS
from hami_common.k8s.watch import WatchEvent, list_then_watch, watch


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
