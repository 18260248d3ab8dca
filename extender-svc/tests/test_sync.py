"""StateSync: watch events into the core (adds, updates, deletes, finished pods released, the
list as a SYNC that drops what vanished), the paged bulk load, and the 410 relist."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import hami_rustcore as core
import httpx
import pytest
from hami_common.k8s import Backoff, ServerError, WatchEvent
from hami_common.k8s.testing import FakeApiServer
from hami_extender.sync import Pending, StateSync
from hami_extender.testing import ALLOCATED, REGISTER

Json = dict[str, Any]


def node(name: str, gpus: int = 2, healthy: bool = True, register: str | None = None) -> Json:
    devs = [core.Device(f"{name}-g{g}", 10, 16000, 100, "NVIDIA-T4", index=g, health=healthy)
            for g in range(gpus)]  # fmt: skip
    value = register if register is not None else core.encode_node_devices(devs)
    return {"metadata": {"name": name, "annotations": {REGISTER: value}}}


def pod(uid: str, on: str | None, gpu: str = "", mem: int = 1000, phase: str = "Running", *,
        bound: bool = True, init: int = 0, text: str | None = None) -> Json:  # fmt: skip
    ann: Json = {}
    if on is not None:
        ann = {"hami.io/vgpu-node": on,
               ALLOCATED: text if text is not None else f"{gpu},NVIDIA,{mem},10:;"}  # fmt: skip
    spec: Json = {"containers": [{"name": "c"}]}
    if bound and on:
        spec["nodeName"] = on
    if init:
        spec["initContainers"] = [{"name": f"i{i}"} for i in range(init)]
    labels = {"hami.io/vgpu-node": on} if on is not None else {}  # what the state lists by
    return {"metadata": {"uid": uid, "namespace": "ns", "name": f"p-{uid}",
                         "annotations": ann, "labels": labels},
            "spec": spec, "status": {"phase": phase}}  # fmt: skip


def used(cluster: core.Cluster, uuid: str) -> int:
    return next(u.usedmem for u in cluster.usage() if u.device.id == uuid)


@pytest.fixture
def sync(api: FakeApiServer) -> StateSync:
    return StateSync(api.client(), core.Cluster(), page_size=2)


def test_nodes_added_updated_and_removed(sync: StateSync) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a"), node("b", gpus=1)]}))
    assert sorted(sync.cluster.node_names()) == ["a", "b"]
    assert sync.nodes_synced.is_set()
    sync.handle_node_event(WatchEvent("MODIFIED", node("b", gpus=3)))
    assert len([u for u in sync.cluster.usage() if u.node == "b"]) == 3
    sync.handle_node_event(WatchEvent("MODIFIED", node("b", healthy=False)))  # all unhealthy
    assert sync.cluster.node_names() == ["a"]
    sync.handle_node_event(WatchEvent("ADDED", node("c")))
    sync.handle_node_event(WatchEvent("DELETED", node("a")))
    assert sync.cluster.node_names() == ["c"]
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("d")]}))  # c vanished meanwhile
    assert sync.cluster.node_names() == ["d"]


def test_waiters_on_a_node_wake_when_its_copy_changes_or_it_goes(sync: StateSync) -> None:
    """Binds queued on a node's lock wait on these wakes instead of polling the copy."""

    async def go() -> list[bool]:
        sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a"), node("b")]}))
        woken = []
        for change in (
            lambda: sync.handle_node_event(WatchEvent("MODIFIED", node("a", gpus=3))),
            lambda: sync.note_lock("a", {"resourceVersion": "9", "annotations": {}}),
            lambda: sync.handle_node_event(WatchEvent("DELETED", node("a"))),
            lambda: sync.handle_node_event(WatchEvent("MODIFIED", node("b"))),  # another node
        ):
            waiters = [asyncio.create_task(sync.node_changed("a", 5.0)) for _ in range(2)]
            await asyncio.sleep(0)
            change()
            await asyncio.sleep(0.05)
            woken.append(all(w.done() for w in waiters))
            for w in waiters:
                w.cancel()
        started = asyncio.get_running_loop().time()
        await sync.node_changed("a", 0.05)  # nothing changes: back at the timeout
        woken.append(asyncio.get_running_loop().time() - started >= 0.04)
        return woken

    assert asyncio.run(go()) == [True, True, True, False, True]


def test_a_bad_register_annotation_keeps_the_node_as_it_was_and_the_others(
    sync: StateSync, caplog: pytest.LogCaptureFixture
) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a"), node("b")]}))
    sync.handle_node_event(WatchEvent("MODIFIED", node("a", register="garbage,,:;")))
    sync.handle_node_event(WatchEvent("ADDED", node("c", register="g0,ten,1,1,T4,0,true:")))
    assert sorted(sync.cluster.node_names()) == ["a", "b"]  # a as it was, c left out
    assert sync.decode_errors == 2
    assert "node a" in caplog.text
    assert "node c" in caplog.text


def test_pods_take_and_release_devices(sync: StateSync) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a")]}))
    sync.handle_pod_event(WatchEvent("SYNC", {"items": [pod("1", "a", "a-g0", 1000),
                                                        pod("2", "a", "a-g1", 3000)]}))  # fmt: skip
    assert (used(sync.cluster, "a-g0"), used(sync.cluster, "a-g1")) == (1000, 3000)
    assert sync.pods_synced.is_set()
    assert sync.synced
    sync.handle_pod_event(WatchEvent("MODIFIED", pod("1", "a", "a-g0", 1000, phase="Succeeded")))
    assert used(sync.cluster, "a-g0") == 0
    sync.handle_pod_event(WatchEvent("ADDED", pod("3", "a", "a-g0", 500)))
    sync.handle_pod_event(WatchEvent("DELETED", pod("2", "a", "a-g1")))
    assert (used(sync.cluster, "a-g0"), used(sync.cluster, "a-g1")) == (500, 0)
    # a relist without pod 3 (deleted while the watch was down) releases it too
    sync.handle_pod_event(WatchEvent("SYNC", {"items": []}))
    assert used(sync.cluster, "a-g0") == 0
    assert sync.cluster.pod_count() == 0


def test_every_pod_shape_in_a_list(sync: StateSync, caplog: pytest.LogCaptureFixture) -> None:
    """Bulk rows, pods that take the per-pod path (unbound, init containers, no allocation),
    finished pods and a malformed allocation, all in one list."""
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a", gpus=4)]}))
    items = [pod("bulk", "a", "a-g0", 100), pod("unbound", "a", "a-g1", 200, bound=False),
             pod("init", "a", "a-g2", 300, init=1), pod("none", None),
             pod("done", "a", "a-g3", 400, phase="Failed"),
             pod("bad", "a", text="x,NVIDIA,abc,10:;")]  # fmt: skip
    sync.handle_pod_event(WatchEvent("SYNC", {"items": items}))
    assert [used(sync.cluster, f"a-g{g}") for g in range(4)] == [100, 200, 300, 0]
    assert sorted(sync.pods) == ["bulk", "init", "unbound"]
    assert sync.decode_errors == 1
    assert "ns/p-bad" in caplog.text
    held = sync.cluster.pod("unbound")
    assert held is not None
    assert held.reserved_at is not None  # a reservation the TTL may end


def test_a_reservation_in_memory_wins_over_an_older_copy(sync: StateSync) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a")]}))
    sync.cluster.upsert_pod("1", "ns", "p-1", "a", "a-g0,NVIDIA,2000,10:;", reserved_at=1.0)
    sync.pending["1"] = Pending("a", {}, {ALLOCATED: "a-g0,NVIDIA,2000,10:;"})
    sync.handle_pod_event(WatchEvent("MODIFIED", pod("1", None)))  # written before our filter
    sync.handle_pod_event(WatchEvent("SYNC", {"items": []}))
    assert used(sync.cluster, "a-g0") == 2000
    sync.handle_pod_event(WatchEvent("DELETED", pod("1", None)))
    assert used(sync.cluster, "a-g0") == 0
    assert "1" not in sync.pending


def test_a_bound_pod_in_the_api_wins_over_a_reservation_in_memory(sync: StateSync) -> None:
    """A pod bound by a previous leader (the answer to kube-scheduler lost), filtered again by
    us before its binding reached our watch: what the API shows bound is what it runs with."""
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a", gpus=2)]}))
    sync.cluster.upsert_pod("1", "ns", "p-1", "a", "a-g1,NVIDIA,2000,10:;", reserved_at=1.0)
    sync.pending["1"] = Pending("a", {}, {ALLOCATED: "a-g1,NVIDIA,2000,10:;"})
    sync.handle_pod_event(WatchEvent("MODIFIED", pod("1", "a", "a-g0", 2000)))  # bound, g0
    assert (used(sync.cluster, "a-g0"), used(sync.cluster, "a-g1")) == (2000, 0)
    assert "1" not in sync.pending
    held = sync.cluster.pod("1")
    assert held is not None
    assert held.reserved_at is None  # bound: no TTL can release it


def test_the_load_is_paged_and_restarts_when_the_continue_token_expires(
    api: FakeApiServer, sync: StateSync
) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a", gpus=5)]}))
    for i in range(5):
        api.put("/api/v1/namespaces/ns/pods", pod(str(i), "a", f"a-g{i}", 100 + i))
    expired = []

    def once_gone(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("continue") == "4" and not expired:
            expired.append(1)
            return httpx.Response(410, json={"kind": "Status", "code": 410, "reason": "Expired"})
        return None

    api.intercept = once_gone
    version = asyncio.run(sync.load_pods())
    assert version == str(api.version)
    assert expired
    pages = [u for m, u in api.requests if m == "GET" and "limit=2" in u]
    assert len(pages) == 3 + 3  # three pages, the last one expired once: all over again
    assert [used(sync.cluster, f"a-g{i}") for i in range(5)] == [100, 101, 102, 103, 104]


def test_a_pod_deleted_while_the_list_starts_over_leaves_the_state(
    api: FakeApiServer, sync: StateSync
) -> None:
    """The first pages of a list that expires are in the state already; the list that
    completes decides, so a pod deleted in between goes."""
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a", gpus=5)]}))
    for i in range(5):
        api.put("/api/v1/namespaces/ns/pods", pod(str(i), "a", f"a-g{i}", 100 + i))

    def gone_once(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("continue") == "4" and "/api/v1/namespaces/ns/pods/p-0" in (
            api.objects
        ):
            del api.objects["/api/v1/namespaces/ns/pods/p-0"]  # listed on the first page
            return httpx.Response(410, json={"kind": "Status", "code": 410, "reason": "Expired"})
        return None

    api.intercept = gone_once
    asyncio.run(sync.load_pods())
    assert [used(sync.cluster, f"a-g{i}") for i in range(5)] == [0, 101, 102, 103, 104]
    assert sorted(sync.pods) == ["1", "2", "3", "4"]


def serve_pages(api: FakeApiServer, items: list[Any], size: int) -> None:
    """The pod list as exactly these items (any shape), ``size`` per page."""

    def pages(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/api/v1/pods" or request.url.params.get("watch") == "true":
            return None
        start = int(request.url.params.get("continue") or 0)
        meta: Json = {"resourceVersion": "77"}
        if start + size < len(items):
            meta["continue"] = str(start + size)
        return httpx.Response(200, json={"kind": "PodList", "metadata": meta,
                                         "items": items[start:start + size]})  # fmt: skip

    api.intercept = pages


def snapshot(sync: StateSync, uids: list[str]) -> Json:
    """Everything the state load decides: devices in use, each pod's allocation, the pods the
    sync tracks and reserves, the decode errors."""
    pods = {}
    for uid in uids:
        alloc = sync.cluster.pod(uid)
        if alloc is not None:
            pods[uid] = (alloc.namespace, alloc.name, alloc.node, alloc.devices, alloc.init_count,
                         alloc.init_done, alloc.reserved_at is None)  # fmt: skip
    usage = [(u.node, u.device.id, u.used, u.usedmem, u.usedcores) for u in sync.cluster.usage()]
    return {"usage": usage, "pods": pods, "tracked": dict(sync.pods),
            "pending": sorted(sync.pending), "errors": sync.decode_errors}  # fmt: skip


def mixed_items() -> list[Any]:
    """Every kind of pod a list can hold, the common one most often."""
    mlu = "hami.io/cambricon-mlu-devices-allocated"
    two = pod("two-vendors", "a", "a-g5", 50)
    two["metadata"]["annotations"][mlu] = "a-g6,MLU,256,10:;"
    inits = pod("init-done", "a", "a-g4", 300, init=2)
    inits["status"]["initContainerStatuses"] = [
        {"state": {"terminated": {"exitCode": 0}}} for _ in range(2)
    ]
    no_ns = pod("no-ns", "a", "a-g1", 10)
    del no_ns["metadata"]["namespace"]
    truthy_node = pod("truthy-node", "a", "a-g2", 20)
    truthy_node["spec"]["nodeName"] = True  # not a string: only Python reads this one
    odd_value = pod("odd-value", "a", "a-g3", 30)
    odd_value["metadata"]["annotations"]["hami.io/other"] = 5
    return [
        *(pod(f"bulk-{i}", "a", f"a-g{i % 8}", 100 + i) for i in range(7)),
        pod("unbound", "a", "a-g1", 200, bound=False),
        pod("init", "a", "a-g2", 300, init=1),
        inits,
        two,
        pod("none", None),
        pod("done", "a", "a-g3", 400, phase="Failed"),
        pod("ok-then-done", "a", "a-g3", 400, phase="Succeeded"),
        pod("bad", "a", text="x,NVIDIA,abc,10:;"),
        pod("mine", "a", "a-g0", 900, bound=False),  # older than a reservation in memory
        no_ns, truthy_node, odd_value,
        {"metadata": "not an object"}, 5, {"spec": {}},
    ]  # fmt: skip


def prepared(api: FakeApiServer) -> StateSync:
    """A sync with state from before the list: pods that will vanish, finish, or be listed again,
    and reservations in memory (one listed with an older copy, one not listed at all)."""
    sync = StateSync(api.client(), core.Cluster(), page_size=3)
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a", gpus=8)]}))
    sync.apply_pod(pod("vanished", "a", "a-g7", 700))
    sync.apply_pod(pod("ok-then-done", "a", "a-g3", 400))
    sync.apply_pod(pod("bulk-0", "a", "a-g6", 5000))
    for uid, gpu in (("mine", "a-g0"), ("reserved-only", "a-g1")):
        text = f"{gpu},NVIDIA,1234,10:;"
        sync.cluster.upsert_pod(uid, "ns", f"p-{uid}", "a", text, reserved_at=1.0)
        sync.pending[uid] = Pending("a", {}, {ALLOCATED: text})
    return sync


def test_a_listed_page_gives_the_state_of_the_per_pod_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pages straight into the core, a watch's SYNC of decoded items (re-encoded into the
    same page path) and `apply_pod` one pod at a time end in the same state."""
    items = mixed_items()
    uids = [i["metadata"]["uid"] for i in items if isinstance(i, dict)
            and isinstance(i.get("metadata"), dict) and "uid" in i["metadata"]]  # fmt: skip
    uids += ["vanished", "reserved-only"]

    api = FakeApiServer()
    serve_pages(api, items, size=3)
    paged = prepared(api)
    assert asyncio.run(paged.load_pods()) == "77"

    batch = prepared(FakeApiServer())
    batch.handle_pod_event(WatchEvent("SYNC", {"items": items}))

    one_by_one = prepared(FakeApiServer())
    for item in items:
        one_by_one.apply_pod(item)
    for gone in set(one_by_one.pods) - set(uids[:-2]):
        if gone not in one_by_one.pending:
            one_by_one._forget(gone)

    want = snapshot(one_by_one, uids)
    assert snapshot(batch, uids) == want
    assert snapshot(paged, uids) == want
    assert want["pods"]["mine"][3] == [[core.AllocDevice("a-g0", "NVIDIA", 1234, 10)]]
    assert "vanished" not in want["pods"]
    assert "reserved-only" in want["pods"]
    assert want["pods"]["no-ns"][0] == "default"
    assert want["errors"] == 1
    assert paged.pods_synced.is_set()
    assert "ns/p-bad: bad device annotation" in caplog.text


def test_a_malformed_page_is_an_error_and_keeps_what_was_loaded(
    api: FakeApiServer, sync: StateSync, caplog: pytest.LogCaptureFixture
) -> None:
    api.put("/api/v1/nodes", node("a", gpus=4))  # the node loop below lists it again
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a", gpus=4)]}))
    for i in range(4):
        api.put("/api/v1/namespaces/ns/pods", pod(str(i), "a", f"a-g{i}", 100 + i))
    broken = {"on": True}

    def second_page_garbled(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("continue") == "2" and broken["on"]:
            return httpx.Response(200, content=b'{"kind":"PodList","items":[{"metadata":')
        return None

    api.intercept = second_page_garbled
    with pytest.raises(ServerError, match=r"GET pods: pod list page: items at line 1 column"):
        asyncio.run(sync.load_pods())
    assert [used(sync.cluster, f"a-g{i}") for i in range(4)] == [100, 101, 0, 0]  # page 1 kept
    assert not sync.pods_synced.is_set()

    # The service's loop logs the failure and lists again; once the API answers, it syncs.
    del api.objects["/api/v1/namespaces/ns/pods/p-0"]

    async def until_synced() -> None:
        task = asyncio.create_task(sync.run())
        try:
            async with asyncio.timeout(10):
                await sync.pods_synced.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    api.requests.clear()

    def garbled_then_fixed(request: httpx.Request) -> httpx.Response | None:
        answer = second_page_garbled(request)
        if answer is not None:
            broken["on"] = False
        return answer

    api.intercept = garbled_then_fixed
    asyncio.run(until_synced())
    assert "pod watch failed" in caplog.text
    assert [used(sync.cluster, f"a-g{i}") for i in range(4)] == [0, 101, 102, 103]


def test_a_410_on_the_watch_lists_again(api: FakeApiServer, sync: StateSync) -> None:
    sync.handle_node_event(WatchEvent("SYNC", {"items": [node("a")]}))
    watches: list[str] = []

    async def silence() -> AsyncIterator[bytes]:
        await asyncio.sleep(3600)
        yield b""

    def gone_then_hang(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("watch") != "true":
            return None
        watches.append(str(request.url))
        if len(watches) == 1:  # the pod came while the watch was down, past its history
            api.put("/api/v1/namespaces/ns/pods", pod("9", "a", "a-g0", 700))
            return httpx.Response(410, json={"kind": "Status", "code": 410, "reason": "Expired"})
        return httpx.Response(200, content=silence())

    api.intercept = gone_then_hang

    async def go() -> None:
        task = asyncio.create_task(sync.run_pods())
        for _ in range(200):
            if len(watches) >= 2 and sync.cluster.pod_count() == 1:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(go())
    lists = [u for m, u in api.requests if m == "GET" and "watch" not in u]
    assert len(lists) >= 2  # listed, watch expired, listed again and saw the new pod
    assert used(sync.cluster, "a-g0") == 700


def test_a_refusing_api_server_gives_one_line_per_failure_not_a_traceback(
    api: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With a wrong token both watch loops logged a 20-line traceback every second (415 lines
    in 12 s). Each failure is now one line that names the URL, the status and what to check,
    and the waits between tries grow with the failures in a row."""

    def refuse(request: httpx.Request) -> httpx.Response:
        if len(api.requests) >= 16:
            enough.set()
        body = {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "Unauthorized"}
        return httpx.Response(401, json=body)

    enough = asyncio.Event()
    api.intercept = refuse
    backoff = Backoff(base=0.002, cap=0.02)
    sync = StateSync(api.client(), core.Cluster(), retry_backoff=backoff)

    async def go() -> None:
        task = asyncio.create_task(sync.run())
        await enough.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, logger="hami_extender.sync"):
        asyncio.run(go())
    lines = [r for r in caplog.records if r.name == "hami_extender.sync"]
    assert len(lines) >= len(api.requests) - 2  # a request per failure (two may be cut short)
    for loop, url in (("node", "/api/v1/nodes"), ("pod", "/api/v1/pods")):
        mine = [r.getMessage() for r in lines if r.getMessage().startswith(f"{loop} watch")]
        assert len(mine) >= 4
        for n, text in enumerate(mine, start=1):
            assert text.startswith(
                f"{loop} watch failed ({n} in a row): GET https://fake.invalid{url}: "
                "HTTP 401 Unauthorized: Unauthorized; the API server refused our credentials"
            ), text
            wait = float(text.rsplit("retrying in ", 1)[1].removesuffix("s"))
            assert wait <= backoff.ceiling(n - 1) + 0.05
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
