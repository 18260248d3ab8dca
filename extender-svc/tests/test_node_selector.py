"""``--node-label-selector``: only the matching nodes are listed and watched (the selector goes
to the API server, which filters), so the state never holds the others."""

from __future__ import annotations

import asyncio
import contextlib

import hami_rustcore as core
import httpx
from hami_common.k8s.testing import FakeApiServer
from hami_extender.settings import ExtenderSettings
from hami_extender.sync import StateSync
from hami_extender.testing import REGISTER


def _node(name: str, labels: dict[str, str]) -> dict[str, object]:
    dev = core.Device(f"{name}-g0", 10, 16000, 100, "NVIDIA-T4")
    return {"metadata": {"name": name, "labels": labels,
                         "annotations": {REGISTER: core.encode_node_devices([dev])}}}  # fmt: skip


def test_only_nodes_matching_the_selector_are_loaded() -> None:
    settings = ExtenderSettings.load([], {"HAMI_EXTENDER_NODE_LABEL_SELECTOR": "gpu=yes"})
    assert settings.node_label_selector == "gpu=yes"
    api = FakeApiServer()
    api.put("/api/v1/nodes", _node("a", {"gpu": "yes"}))
    api.put("/api/v1/nodes", _node("b", {}))
    selectors: list[str | None] = []

    def select(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/api/v1/nodes" or request.url.params.get("watch") == "true":
            return None
        selector = request.url.params.get("labelSelector")
        selectors.append(selector)
        nodes = (api.get("/api/v1/nodes/a"), api.get("/api/v1/nodes/b"))
        wanted = {"gpu": "yes"} if selector == "gpu=yes" else {}
        items = [n for n in nodes if wanted.items() <= n["metadata"]["labels"].items()]
        return httpx.Response(200, json={"kind": "List", "metadata": {"resourceVersion": "9"},
                                         "items": items})  # fmt: skip

    api.intercept = select
    sync = StateSync(api.client(), core.Cluster(), settings.node_label_selector)

    async def go() -> None:
        task = asyncio.create_task(sync.run_nodes())
        async with asyncio.timeout(10):
            await sync.nodes_synced.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert selectors == ["gpu=yes"]
    assert sync.cluster.node_names() == ["a"]
    watch = [u for m, u in api.requests if "watch=true" in u and "/nodes" in u]
    assert watch
    assert all("labelSelector=gpu%3Dyes" in u for u in watch)
