"""The extender's verbs on an in-memory API: filter then bind, their OpenTelemetry spans in the
pod's trace, the metrics (HAMi's names with values), the Events and the explanations; garbage
arguments always answer with an error in the body."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hami_common.k8s import WatchEvent
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol import nodelock
from hami_common.protocol.annotations import BIND_PHASE, NODE_LOCK, VGPU_NODE
from hami_extender.explain import SPAN_NODE_REASONS
from hami_extender.extender import server_minor
from hami_extender.testing import ALLOCATED, Rig
from hami_extender.testing import extender_rig as rig
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

Json = dict[str, Any]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def gpu_pod(name: str, mem: int) -> Json:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                     "annotations": {"hami.io/trace-context": f"00-{TRACE}-{PARENT}-01"}},
        "spec": {"schedulerName": "hami-scheduler", "containers": [{"name": "c", "resources": {
            "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(mem)}}}]},
    }  # fmt: skip


def filter_body(pod: Json, nodes: list[Any]) -> bytes:
    return orjson.dumps({"Pod": pod, "NodeNames": nodes})


def allocated(r: Rig, api: FakeApiServer, name: str) -> None:
    """What the device plugin does after Allocate (bind-phase success), as the pod watch
    delivers it."""
    pod = api.get(f"/api/v1/namespaces/ns/pods/{name}")
    pod["metadata"]["annotations"][BIND_PHASE] = "success"
    r.ext.sync.handle_pod_event(WatchEvent("MODIFIED", api.put("/api/v1/namespaces/ns/pods", pod)))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    value = registry.get_sample_value(name, labels)
    return value


def test_filter_then_bind_in_the_pods_trace(api: FakeApiServer) -> None:
    async def go() -> tuple[Rig, Json, Json]:
        r = rig(api)
        pod = gpu_pod("p", 4000)
        api.put("/api/v1/namespaces/ns/pods", pod)
        placed = orjson.loads(await r.ext.filter(filter_body(pod, ["n0", "n1", "n2"])))
        bind = {
            "PodName": "p",
            "PodNamespace": "ns",
            "PodUID": "uid-p",
            "Node": placed["NodeNames"][0],
        }
        bound = orjson.loads(await r.ext.bind(orjson.dumps(bind)))
        return r, placed, bound

    r, placed, bound = asyncio.run(go())
    assert placed["Error"] == ""
    assert len(placed["NodeNames"]) == 1
    assert bound == {"Error": ""}
    node = placed["NodeNames"][0]
    stored = api.get("/api/v1/namespaces/ns/pods/p")
    assert stored["spec"]["nodeName"] == node
    assert stored["metadata"]["annotations"][BIND_PHASE] == "allocating"
    assert stored["metadata"]["annotations"][ALLOCATED].startswith(f"gpu-{node[1:]},NVIDIA,4000,")
    assert NODE_LOCK not in api.get(f"/api/v1/nodes/{node}")["metadata"]["annotations"]
    assert r.ext.sync.allocating.holders(node) == {"uid-p"}  # until the plugin's success
    spans = {s.name: s for s in r.spans.get_finished_spans()}
    for name in ("filter", "bind"):
        span = spans[name]
        assert f"{span.context.trace_id:032x}" == TRACE
        assert span.parent is not None
        assert f"{span.parent.span_id:016x}" == PARENT
    attrs = spans["filter"].attributes or {}
    assert attrs["hami.filter.node"] == node
    assert str(attrs["hami.filter.devices"]).startswith(f"gpu-{node[1:]},NVIDIA,4000")
    assert attrs["hami.filter.candidates"] == 3
    assert (spans["bind"].attributes or {})["hami.bind.devices"] == attrs["hami.filter.devices"]
    explained = r.ext.explain.get("ns", "p")
    assert explained is not None
    assert explained["summary"] == f"bound to node {node}"
    assert [s["step"] for s in explained["steps"]] == ["filter", "bind"]


def test_a_placed_pod_gets_its_node_alone_and_the_reasons_stay_in_the_explanation(
    api: FakeApiServer,
) -> None:
    """As HAMi answers: no list of every other node's reasons (about 150 KB at 5,000 nodes,
    which kube-scheduler would discard); a pod that fits nowhere still gets every reason."""

    async def go() -> tuple[Rig, Json, Json]:
        r = rig(api, nodes=3)
        big = gpu_pod("big", 15000)
        api.put("/api/v1/namespaces/ns/pods", big)
        body = filter_body(big, ["n0", "n1", "n2"])
        assert orjson.loads(await r.ext.filter(body))["NodeNames"] == ["n0"]
        again = gpu_pod("again", 15000)
        api.put("/api/v1/namespaces/ns/pods", again)
        placed = orjson.loads(await r.ext.filter(filter_body(again, ["n0", "n1", "n2"])))
        huge = gpu_pod("huge", 99999)
        api.put("/api/v1/namespaces/ns/pods", huge)
        none = orjson.loads(await r.ext.filter(filter_body(huge, ["n0", "n1", "n2"])))
        return r, placed, none

    r, placed, none = asyncio.run(go())
    assert placed["NodeNames"] == ["n1"]
    assert placed["FailedNodes"] == {}
    explained = r.ext.explain.get("ns", "again")
    assert explained is not None
    assert explained["steps"][-1]["failed"] == {"n0": "1/1 CardInsufficientMemory"}
    assert none["NodeNames"] == []
    assert sorted(none["FailedNodes"]) == ["n0", "n1", "n2"]


@pytest.mark.parametrize(
    ("minor", "lock", "writes"),
    [("36", "memory", ["POST pods/p/binding"]),
     ("34", "memory", ["PATCH pods/p", "POST pods/p/binding"]),
     ("36", "annotation", ["PATCH nodes/n0", "POST pods/p/binding"]),
     ("34", "annotation", ["PATCH nodes/n0", "PATCH pods/p", "POST pods/p/binding"])],
)  # fmt: skip
def test_the_allocation_rides_on_the_binding_from_1_35(
    api: FakeApiServer, minor: str, lock: str, writes: list[str]
) -> None:
    """From Kubernetes 1.35 the API server copies a Binding's labels (and, always, its
    annotations) onto the pod: the allocation, bind-phase and the vgpu-node label then land in
    the write that sets nodeName. Older servers get HAMi's patch first. The node lock in memory
    writes nothing to the node; HAMi's annotation lock's first compare-and-swap starts from the
    node watch's copy: no GET of the node."""
    api.server_version = {"major": "1", "minor": minor}

    async def go() -> Json:
        r = rig(api, node_lock=lock)
        pod = gpu_pod("p", 4000)
        api.put("/api/v1/namespaces/ns/pods", pod)
        assert orjson.loads(await r.ext.filter(filter_body(pod, ["n0"])))["NodeNames"] == ["n0"]
        api.requests.clear()
        args = {"PodName": "p", "PodNamespace": "ns", "PodUID": "uid-p", "Node": "n0"}
        return orjson.loads(await r.ext.bind(orjson.dumps(args)))

    assert asyncio.run(go()) == {"Error": ""}
    calls = [f"{m} {url.split('/api/v1/', 1)[1].removeprefix('namespaces/ns/')}"
             for m, url in api.requests if "/api/v1/" in url and "events" not in url]  # fmt: skip
    assert [c for c in calls if not c.startswith("GET")] == writes
    assert "GET nodes/n0" not in calls
    stored = api.get("/api/v1/namespaces/ns/pods/p")
    assert stored["spec"]["nodeName"] == "n0"
    assert stored["metadata"]["labels"][VGPU_NODE] == "n0"
    assert stored["metadata"]["annotations"][BIND_PHASE] == "allocating"
    assert stored["metadata"]["annotations"][ALLOCATED].startswith("gpu-0,NVIDIA,4000,")


def test_a_server_that_drops_binding_labels_gets_them_patched_and_patch_first(
    api: FakeApiServer,
) -> None:
    """1.35+ with PodTopologyLabelsAdmission off: the Binding's labels are not copied. The first
    bind reads the pod back, labels it, and later binds patch before the Binding."""
    api.binding_copies = ("annotations",)

    async def go() -> tuple[Rig, list[str]]:
        r = rig(api)
        for name in ("p", "q"):
            pod = gpu_pod(name, 1000)
            api.put("/api/v1/namespaces/ns/pods", pod)
            placed = orjson.loads(await r.ext.filter(filter_body(pod, ["n0", "n1", "n2"])))
            args = {"PodName": name, "PodNamespace": "ns", "PodUID": f"uid-{name}",
                    "Node": placed["NodeNames"][0]}  # fmt: skip
            api.requests.clear()
            assert orjson.loads(await r.ext.bind(orjson.dumps(args))) == {"Error": ""}
            allocated(r, api, name)
        pod_writes = [m for m, u in api.requests if "/pods/q" in u and m == "PATCH"]
        return r, pod_writes

    r, q_patches = asyncio.run(go())
    for name in ("p", "q"):
        stored = api.get(f"/api/v1/namespaces/ns/pods/{name}")
        assert stored["metadata"]["labels"][VGPU_NODE] == stored["spec"]["nodeName"]
    assert q_patches == ["PATCH"]  # q: the allocation patched before its Binding
    assert r.ext._carries is False


def test_server_minor_reads_kubernetes_versions() -> None:
    assert server_minor({"major": "1", "minor": "36+"}) == (1, 36)
    assert server_minor({"major": "1", "minor": "x"}) == (0, 0)
    assert server_minor({}) == (0, 0)


def test_metrics_carry_hamis_names_with_values_after_a_filter(api: FakeApiServer) -> None:
    async def go() -> Rig:
        r = rig(api)
        await r.ext.filter(filter_body(gpu_pod("p", 4000), ["n0", "n1", "n2"]))
        await r.ext.filter(filter_body(gpu_pod("q", 99999), ["n0", "n1", "n2"]))
        return r

    r = asyncio.run(go())
    text = r.ext.metrics.render().decode()
    for name in ("hami_gpu_memory_limit_bytes", "hami_gpu_memory_allocated_bytes",
                 "hami_gpu_shared_count", "hami_gpu_core_allocated_ratio",
                 "hami_node_gpu_overview", "hami_node_gpu_memory_allocated_ratio"):  # fmt: skip
        assert f"\n{name}{{" in text, name
    allocated = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("hami_gpu_memory_allocated_bytes{")]  # fmt: skip
    assert sorted(allocated) == [0.0, 0.0, 4000 * 2**20]
    decisions = "hami_extender_decisions_total"
    assert sample(r.registry, decisions, verb="filter", outcome="placed", reason="fit") == 1.0
    assert sample(r.registry, decisions, verb="filter", outcome="unschedulable",
                  reason="CardInsufficientMemory") == 1.0  # fmt: skip
    assert sample(r.registry, "hami_extender_filter_duration_seconds_count") == 2.0


def test_nothing_fits_answers_reasons_an_event_and_an_explanation(api: FakeApiServer) -> None:
    async def go() -> tuple[Rig, Json]:
        r = rig(api, nodes=30)
        names = [f"n{n}" for n in range(30)]
        return r, orjson.loads(await r.ext.filter(filter_body(gpu_pod("big", 99999), names)))

    r, answer = asyncio.run(go())
    assert answer["NodeNames"] == []
    assert len(answer["FailedNodes"]) == 30
    assert all("CardInsufficientMemory" in v for v in answer["FailedNodes"].values())
    event, exists = r.events.queue.get_nowait()
    assert not exists  # the writer checks that the pod exists before it writes
    assert event["reason"] == "FilteringFailed"
    assert "30 nodes do not meet" in event["message"]
    span = next(s for s in r.spans.get_finished_spans() if s.name == "filter")
    attrs = span.attributes or {}
    assert attrs["hami.filter.failed_count"] == 30
    assert len(orjson.loads(str(attrs["hami.filter.failed_nodes"]))) == SPAN_NODE_REASONS
    assert orjson.loads(str(attrs["hami.filter.reasons"])) == {"CardInsufficientMemory": 30}
    assert attrs["hami.filter.message"] == event["message"]  # why, in words, on the span
    explained = r.ext.explain.get("ns", "big")
    assert explained is not None
    assert explained["summary"].startswith("pending: no node fits (30 nodes rejected")


def test_node_names_that_are_not_strings_are_a_clear_error(api: FakeApiServer) -> None:
    async def go() -> tuple[Rig, Json]:
        r = rig(api)
        return r, orjson.loads(await r.ext.filter(filter_body(gpu_pod("p", 10), ["n0", 7])))

    r, answer = asyncio.run(go())
    assert "NodeNames to be a list of strings or null" in answer["Error"]
    assert r.ext.cluster.pod("uid-p") is None
    assert sample(r.registry, "hami_extender_decisions_total", verb="filter", outcome="error",
                  reason="bad-request") == 1.0  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


annotations = st.dictionaries(
    st.sampled_from(["hami.io/trace-context", "nvidia.com/use-gputype", "hami.io/bind-phase"]),
    st.text(max_size=40) | json_values,
    max_size=2,
)
metadata = st.fixed_dictionaries(
    {"uid": st.just("u"), "name": st.just("p"), "namespace": st.just("ns")},
    optional={"annotations": annotations},
)


@settings(max_examples=60, deadline=None)
@given(
    pod=st.fixed_dictionaries({"metadata": metadata}, optional={"spec": json_values}),
    names=json_values,
)
def test_garbage_pods_and_node_lists_never_crash(pod: Json, names: Any) -> None:
    async def go() -> Json:
        r = rig(FakeApiServer(), nodes=1)
        return orjson.loads(await r.ext.filter(orjson.dumps({"Pod": pod, "NodeNames": names})))

    answer = asyncio.run(go())
    assert set(answer) == {
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    }
    assert "hami-extender failed" not in answer["Error"], answer["Error"]  # no internal error


def test_filter_prefers_nodes_whose_lock_is_free(api: FakeApiServer) -> None:
    """With binpack every pod would go to the fullest node and its bind would wait for the
    previous pod's lock; a free node is preferred while one fits, a locked one taken otherwise."""

    async def place(r: Rig, name: str, bind: bool) -> str:
        pod = gpu_pod(name, 4000)
        api.put("/api/v1/namespaces/ns/pods", pod)
        node = str(orjson.loads(await r.ext.filter(filter_body(pod, ["n0", "n1"])))["NodeNames"][0])
        if bind:
            args = {"PodName": name, "PodNamespace": "ns", "PodUID": f"uid-{name}", "Node": node}
            assert orjson.loads(await r.ext.bind(orjson.dumps(args))) == {"Error": ""}
        return node

    async def go() -> tuple[list[str], set[str]]:
        r = rig(api, nodes=2, node_lock="annotation", prefer_idle_nodes=True)
        first = await place(r, "a", bind=True)
        second = await place(r, "b", bind=True)  # binpack alone would pick `first` again
        third = await place(r, "c", bind=False)  # both locked: the best node all the same
        r.ext.sync.handle_node_event(WatchEvent("MODIFIED", api.get(f"/api/v1/nodes/{first}")))
        released = dict(api.get(f"/api/v1/nodes/{second}"))
        kept = {k: v for k, v in released["metadata"]["annotations"].items() if k != NODE_LOCK}
        released["metadata"] = {**released["metadata"], "annotations": kept}
        r.ext.sync.handle_node_event(WatchEvent("MODIFIED", released))
        return [first, second, third], set(r.ext.sync.locked)

    placed, locked = asyncio.run(go())
    assert placed[0] != placed[1]
    assert placed[2] in ("n0", "n1")
    assert locked == {placed[0]}  # still locked in the API; the other one's plugin released it


@pytest.mark.parametrize("window", [1, 4])
def test_a_binpack_burst_spreads_over_the_nodes_it_fills_anyway(
    api: FakeApiServer, window: int
) -> None:
    """Six pods pending at once, two to a node: with a window they allocate on three nodes at
    once from the first pods on, and end on the three nodes packing them one at a time uses."""
    names = [f"p{i}" for i in range(6)]

    async def go() -> list[str]:
        r = rig(api, nodes=4, burst_window=window)
        pods = [gpu_pod(name, 8000) for name in names]
        r.pending.apply("SYNC", {"items": [api.put("/api/v1/namespaces/ns/pods", p) for p in pods]})
        chosen = []
        for pod in pods:  # reserved, not bound yet: each counts in flight on its node
            answer = orjson.loads(await r.ext.filter(filter_body(pod, ["n0", "n1", "n2", "n3"])))
            chosen.append(str(answer["NodeNames"][0]))
        return chosen

    chosen = asyncio.run(go())
    if window == 1:
        assert chosen == ["n0", "n0", "n1", "n1", "n2", "n2"]  # the fullest node always
    else:
        assert chosen[:3] == ["n0", "n1", "n2"]  # three allocating at once
    assert sorted(chosen) == ["n0", "n0", "n1", "n1", "n2", "n2"]  # packing's three nodes


def test_a_bind_that_cannot_take_the_lock_gives_the_reservation_back(api: FakeApiServer) -> None:
    """The retry must be free to choose a node whose lock is free, not wait on this one again."""

    async def go() -> tuple[Rig, Json]:
        r = rig(api, nodes=1, lock_wait_seconds=0.3, node_lock="annotation")
        ann = {BIND_PHASE: "allocating", "hami.io/vgpu-node": "n0"}
        holder = {"metadata": {"name": "holder", "namespace": "ns", "annotations": ann},
                  "spec": {"nodeName": "n0"}, "status": {"phase": "Pending"}}  # fmt: skip
        api.put("/api/v1/namespaces/ns/pods", holder)
        lock = nodelock.format_lock(datetime.now(UTC), "ns", "holder")
        node = api.get("/api/v1/nodes/n0")
        node["metadata"]["annotations"][NODE_LOCK] = lock
        api.put("/api/v1/nodes", node)  # a new resourceVersion, as any change to a node
        pod = gpu_pod("p", 1000)
        api.put("/api/v1/namespaces/ns/pods", pod)
        assert orjson.loads(await r.ext.filter(filter_body(pod, ["n0"])))["NodeNames"] == ["n0"]
        args = {"PodName": "p", "PodNamespace": "ns", "PodUID": "uid-p", "Node": "n0"}
        return r, orjson.loads(await r.ext.bind(orjson.dumps(args)))

    r, answer = asyncio.run(go())
    assert "locked by pod ns/holder" in answer["Error"]
    assert r.ext.cluster.pod("uid-p") is None
    assert "uid-p" not in r.ext.sync.pending
    assert "nodeName" not in api.get("/api/v1/namespaces/ns/pods/p")["spec"]


def test_a_bind_whose_pod_was_placed_again_while_it_waited_does_not_bind(
    api: FakeApiServer,
) -> None:
    """kube-scheduler's bind call timed out while the bind waited for the node's lock, and it
    filtered the pod again (other devices): the waiting bind must not write the earlier
    placement, which would book devices the state no longer holds for the pod."""

    async def go() -> tuple[Rig, Json]:
        r = rig(api, nodes=2, lock_wait_seconds=5, node_lock="annotation")
        ann = {BIND_PHASE: "allocating", "hami.io/vgpu-node": "n0"}
        holder = {"metadata": {"name": "holder", "namespace": "ns", "annotations": ann},
                  "spec": {"nodeName": "n0"}, "status": {"phase": "Pending"}}  # fmt: skip
        api.put("/api/v1/namespaces/ns/pods", holder)
        node = api.get("/api/v1/nodes/n0")
        node["metadata"]["annotations"][NODE_LOCK] = nodelock.format_lock(
            datetime.now(UTC), "ns", "holder"
        )
        r.ext.sync.handle_node_event(WatchEvent("MODIFIED", api.put("/api/v1/nodes", node)))
        pod = gpu_pod("p", 1000)
        api.put("/api/v1/namespaces/ns/pods", pod)
        assert orjson.loads(await r.ext.filter(filter_body(pod, ["n0"])))["NodeNames"] == ["n0"]
        args = {"PodName": "p", "PodNamespace": "ns", "PodUID": "uid-p", "Node": "n0"}
        bind = asyncio.create_task(r.ext.bind(orjson.dumps(args)))
        await asyncio.sleep(0.3)  # waiting for the holder's lock
        assert orjson.loads(await r.ext.filter(filter_body(pod, ["n1"])))["NodeNames"] == ["n1"]
        node = api.get("/api/v1/nodes/n0")
        node["metadata"]["annotations"].pop(NODE_LOCK)
        r.ext.sync.handle_node_event(WatchEvent("MODIFIED", api.put("/api/v1/nodes", node)))
        return r, orjson.loads(await bind)

    r, answer = asyncio.run(go())
    assert answer["Error"] == (
        "pod ns/p was placed again (on node n1) while this bind waited; not binding with the "
        "earlier placement"
    )
    assert "nodeName" not in api.get("/api/v1/namespaces/ns/pods/p")["spec"]
    assert NODE_LOCK not in api.get("/api/v1/nodes/n0")["metadata"]["annotations"]
    held = r.ext.cluster.pod("uid-p")
    assert held is not None
    assert (held.node, held.reserved_at is not None) == ("n1", True)  # the newer placement


def test_a_queued_bind_waits_on_the_watch_not_the_api(api: FakeApiServer) -> None:
    """A lock whose holder was judged live is not read again while the node watch shows it
    held: the queued bind makes no API call until the watch shows the release, then takes the
    lock with one compare-and-swap from the watch's copy."""

    async def go() -> tuple[Json, list[tuple[str, str]], list[tuple[str, str]]]:
        r = rig(api, nodes=1, lock_wait_seconds=5, node_lock="annotation")

        def watched_lock(value: str | None) -> Json:
            """The node's lock set (None: released, as the plugin does), as the watch shows."""
            node = api.get("/api/v1/nodes/n0")
            node["metadata"]["annotations"].pop(NODE_LOCK, None)
            if value is not None:
                node["metadata"]["annotations"][NODE_LOCK] = value
            node = api.put("/api/v1/nodes", node)
            r.ext.sync.handle_node_event(WatchEvent("MODIFIED", node))
            return node

        async def filter_then_bind(name: str) -> asyncio.Task[bytes]:
            pod = gpu_pod(name, 1000)
            api.put("/api/v1/namespaces/ns/pods", pod)
            answer = orjson.loads(await r.ext.filter(filter_body(pod, ["n0"])))
            assert answer["NodeNames"] == ["n0"]
            api.requests.clear()
            args = {"PodName": name, "PodNamespace": "ns", "PodUID": f"uid-{name}", "Node": "n0"}
            return asyncio.create_task(r.ext.bind(orjson.dumps(args)))

        ann = {BIND_PHASE: "allocating", "hami.io/vgpu-node": "n0"}
        holder = {"metadata": {"name": "holder", "namespace": "ns", "annotations": ann},
                  "spec": {"nodeName": "n0"}, "status": {"phase": "Pending"}}  # fmt: skip
        api.put("/api/v1/namespaces/ns/pods", holder)
        watched_lock(nodelock.format_lock(datetime.now(UTC), "ns", "holder"))
        bind = await filter_then_bind("p")
        await asyncio.sleep(0.3)  # judged live once (node and holder read), then waiting
        judged = list(api.requests)
        await asyncio.sleep(0.3)
        waiting = list(api.requests[len(judged) :])
        watched_lock(None)  # the plugin releases it
        api.requests.clear()
        answer = orjson.loads(await bind)
        assert answer == {"Error": ""}
        after = list(api.requests)
        # the next pod, before the watch shows the lock we took for p: the copy already has it
        # (from the compare-and-swap's answer), a holder known to be live: no Conflict, no read
        assert r.ext._watched_holder("n0") == "ns/p"
        bind = await filter_then_bind("q")
        await asyncio.sleep(0.3)
        assert [u for _, u in api.requests if "/api/v1/" in u and "events" not in u] == []
        node = watched_lock(None)
        assert orjson.loads(await bind) == {"Error": ""}
        return node, judged + waiting, after

    _, before, after = asyncio.run(go())
    reads = [
        (m, u.split("/api/v1/", 1)[1]) for m, u in before if "/api/v1/" in u and "events" not in u
    ]
    assert reads == [("GET", "nodes/n0"), ("GET", "namespaces/ns/pods/holder")]
    writes = [
        (m, u.split("/api/v1/", 1)[1]) for m, u in after if "/api/v1/" in u and "events" not in u
    ]
    assert writes[0] == ("PATCH", "nodes/n0")  # from the watch's copy: no GET first
    assert ("GET", "nodes/n0") not in writes
    assert api.get("/api/v1/nodes/n0")["metadata"]["annotations"][NODE_LOCK].endswith(",ns,q")
