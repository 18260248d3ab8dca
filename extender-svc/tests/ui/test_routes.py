"""The web UI on a state with a placed pod, a pending pod and many nodes: what each page shows,
searching and paging, and that everything from the cluster is escaped."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import hami_rustcore as core
import httpx
import orjson
from hami_common.k8s.testing import FakeApiServer
from hami_extender.pending import PendingPod
from hami_extender.testing import extender_rig
from hami_extender.ui.routes import UiSources, ui_routes
from hami_extender.ui.view import Views
from starlette.applications import Starlette

TRACES = "http://jaeger.example:16686"


def gpu_pod(name: str, mem: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"schedulerName": "hami-scheduler", "containers": [{"name": "c", "resources": {
            "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(mem)}}}]},
    }  # fmt: skip


def browse(nodes: int, *paths: str) -> list[httpx.Response]:
    """Place ``ns/small``, fail ``ns/huge`` (pending), then GET each path."""

    async def go() -> list[httpx.Response]:
        api = FakeApiServer()
        r = extender_rig(api, nodes=nodes)
        names = [f"n{i}" for i in range(nodes)]
        for pod in (gpu_pod("small", 4000), gpu_pod("huge", 999999)):
            api.put("/api/v1/namespaces/ns/pods", pod)
            await r.ext.filter(orjson.dumps({"Pod": pod, "NodeNames": names}))
        pending = {"uid-huge": PendingPod("uid-huge", "ns", "huge", "2026-01-01T00:00:00Z")}
        views = Views(r.ext.cluster, lambda: list(r.ext.sync.pending), refresh=0)
        src = UiSources(r.ext.cluster, views, r.ext.explain, lambda: pending, TRACES)
        app = Starlette(routes=ui_routes(src))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://x") as http:  # fmt: skip
            return [await http.get(p) for p in paths]

    return asyncio.run(go())


def test_overview_node_and_pod_pages() -> None:
    overview, node, pod, pending, missing = browse(
        3, "/ui", "/ui/nodes/n0", "/ui/pods/ns/small", "/ui/pending", "/ui/nodes/nope"
    )
    assert overview.status_code == 200
    assert overview.headers["content-type"].startswith("text/html")
    assert re.findall(r'data-node="(n\d)"', overview.text) == ["n0", "n1", "n2"]
    assert '<a href="/ui/pending">1</a>' in overview.text  # the pending count links there
    # binpack put the pod on n0's only device (16000 MiB): 4000 promised, 12000 free
    assert "3.9 GiB of 15.6 GiB" in node.text
    assert "11.7 GiB free" in node.text
    assert 'data-pod="ns/small"' in node.text
    assert "reserved" in node.text  # filtered, not bound yet
    assert "reserved on n0" in pod.text
    assert "trace" in pod.text
    trace = re.search(r'id=trace href="([^"]+)"', pod.text)
    assert trace is not None
    assert re.fullmatch(rf"{TRACES}/trace/[0-9a-f]{{32}}", trace.group(1))
    assert 'data-reason="CardInsufficientMemory"' in pending.text
    assert 'data-pod="ns/huge"' in pending.text
    assert missing.status_code == 404


def test_a_pending_pod_page_shows_its_reason_and_each_nodes() -> None:
    [page] = browse(3, "/ui/pods/ns/huge")
    assert "<b data-status>pending</b>" in page.text
    assert "<b class=reason data-reason>CardInsufficientMemory</b>" in page.text
    row = r'<tr data-node="(n\d)"><td>n\d</td><td class=reason>1/1 CardInsufficientMemory</td>'
    assert re.findall(row, page.text) == ["n0", "n1", "n2"]


def test_search_and_paging_at_many_nodes() -> None:
    first, last, found, sorted_free, bad = browse(
        120, "/ui", "/ui?page=3", "/ui?q=n11", "/ui?sort=free&page=3", "/ui?page=x"
    )
    assert len(re.findall(r"data-node=", first.text)) == 50
    assert "page 1 of 3 (120)" in first.text
    assert len(re.findall(r"data-node=", last.text)) == 20
    assert re.findall(r'data-node="([^"]+)"', found.text) == [
        "n11",
        *(f"n11{i}" for i in range(10)),
    ]
    assert re.findall(r'data-node="([^"]+)"', sorted_free.text)[-1] == "n0"  # the least free
    assert "page 1 of 3" in bad.text


def test_cluster_values_are_escaped() -> None:
    [page] = browse(1, "/ui/pods/ns/%3Cscript%3Ealert(1)")
    assert "<script>" not in page.text
    assert "ns/&lt;script&gt;alert(1)" in page.text


def test_view_counts_devices_of_the_core() -> None:
    cluster = core.Cluster()
    cluster.set_node("a", [core.Device(f"g{i}", 10, 1000, 100, "T4", index=i) for i in range(3)])
    views = Views(cluster, list, refresh=60)
    snap = views.snapshot()
    assert (snap.devices, snap.totals()[:3]) == (3, (3000, 0, 300))
    assert views.snapshot() is snap  # cached within the refresh interval
