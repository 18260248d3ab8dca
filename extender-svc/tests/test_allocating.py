"""The node lock kept in memory (``--node-lock memory``): at most one pod per node in
``bind-phase=allocating``, with no write to the node; binds to a busy node wait for the pod
watch to show the plugin's answer; the map comes back from the pods' annotations after a
restart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
from hami_common.k8s import WatchEvent
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import BIND_PHASE, NODE_LOCK
from hami_extender.allocating import Allocating
from hami_extender.testing import Rig
from hami_extender.testing import extender_rig as rig

Json = dict[str, Any]
PODS = "/api/v1/namespaces/ns/pods"


def gpu_pod(name: str) -> Json:
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"schedulerName": "hami-scheduler",
                     "containers": [{"name": "c", "resources": {"limits": limits}}]}}  # fmt: skip


async def filter_then_bind(r: Rig, api: FakeApiServer, name: str) -> asyncio.Task[bytes]:
    pod = gpu_pod(name)
    api.put(PODS, pod)
    body = orjson.dumps({"Pod": pod, "NodeNames": ["n0"]})
    assert orjson.loads(await r.ext.filter(body))["NodeNames"] == ["n0"]
    args = {"PodName": name, "PodNamespace": "ns", "PodUID": f"uid-{name}", "Node": "n0"}
    return asyncio.create_task(r.ext.bind(orjson.dumps(args)))


def watched(r: Rig, api: FakeApiServer, name: str, phase: str) -> None:
    """The pod's bind-phase as the plugin writes it, delivered by the pod watch."""
    pod = api.get(f"{PODS}/{name}")
    pod["metadata"]["annotations"][BIND_PHASE] = phase
    r.ext.sync.handle_pod_event(WatchEvent("MODIFIED", api.put(PODS, pod)))


def test_holds_are_per_node_and_wake_the_waiters() -> None:
    busy: list[tuple[str, bool]] = []
    allocating = Allocating(lambda node, b: busy.append((node, b)))

    async def go() -> tuple[bool, bool]:
        allocating.hold("n0", "a")
        assert allocating.free_for("n0", "a")  # its own hold does not block it
        assert not allocating.free_for("n0", "b")
        assert allocating.free_for("n1", "b")
        waiter = asyncio.create_task(allocating.wait_free("n0", "b", 5))
        timed_out = await allocating.wait_free("n0", "c", 0.05)
        allocating.observe("a", "n0", allocating=False)  # the plugin answered
        return timed_out, await waiter

    assert asyncio.run(go()) == (False, True)
    assert busy == [("n0", True), ("n0", False)]
    allocating.observe("x", "n2", allocating=True)
    allocating.forget_all_but(set())
    assert allocating.holders("n2") == set()


def test_a_bind_to_a_busy_node_waits_for_the_watch_and_writes_only_the_binding(
    api: FakeApiServer,
) -> None:
    async def go() -> tuple[Json, list[tuple[str, str]], bool]:
        r = rig(api, nodes=1, lock_wait_seconds=5)
        first = await filter_then_bind(r, api, "first")
        assert orjson.loads(await first) == {"Error": ""}
        api.requests.clear()
        second = await filter_then_bind(r, api, "second")
        await asyncio.sleep(0.3)
        waiting = not second.done()  # "first" is still being allocated
        watched(r, api, "first", "success")
        answer = orjson.loads(await second)
        return answer, list(api.requests), waiting

    answer, calls, waiting = asyncio.run(go())
    assert waiting
    assert answer == {"Error": ""}
    api_calls = [(m, u.split("/api/v1/", 1)[1]) for m, u in calls if "/api/v1/" in u]
    assert api_calls == [("POST", "namespaces/ns/pods/second/binding")]  # no node read or write
    assert NODE_LOCK not in api.get("/api/v1/nodes/n0")["metadata"]["annotations"]


def test_a_restart_finds_the_pod_being_allocated_from_its_annotations(
    api: FakeApiServer,
) -> None:
    """A pod bound before the restart, its plugin not done yet: the list shows it allocating,
    and the node takes no other pod until the watch shows it done."""
    holder = {"metadata": {"name": "holder", "namespace": "ns", "uid": "uid-holder",
                           "labels": {"hami.io/vgpu-node": "n0"},
                           "annotations": {"hami.io/vgpu-node": "n0", BIND_PHASE: "allocating",
                                           "hami.io/vgpu-devices-allocated":
                                           "gpu-0,NVIDIA,1000,0:;"}},
              "spec": {"nodeName": "n0", "containers": [{"name": "c"}]},
              "status": {"phase": "Pending"}}  # fmt: skip
    api.put(PODS, holder)

    async def go() -> tuple[Rig, Json]:
        r = rig(api, nodes=1, lock_wait_seconds=0.3)
        await r.ext.sync.load_pods()  # what the restarted extender lists
        assert r.ext.sync.allocating.holders("n0") == {"uid-holder"}
        return r, orjson.loads(await (await filter_then_bind(r, api, "p")))

    r, answer = asyncio.run(go())
    assert answer["Error"] == (
        "node n0 is allocating pod ns/holder for longer than 0.3s; the pod will be retried"
    )
    assert r.ext.cluster.pod("uid-p") is None  # the retry may choose another node
    assert "nodeName" not in api.get(f"{PODS}/p")["spec"]


def test_a_failed_binding_frees_the_node(api: FakeApiServer) -> None:
    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/binding"):
            return httpx.Response(500, json={"kind": "Status", "code": 500, "message": "boom"})
        return None

    async def go() -> tuple[Rig, Json]:
        r = rig(api, nodes=1)
        api.intercept = refuse
        return r, orjson.loads(await (await filter_then_bind(r, api, "p")))

    r, answer = asyncio.run(go())
    assert answer["Error"].startswith("binding ns/p to n0 failed")
    assert r.ext.sync.allocating.holders("n0") == set()


def test_only_our_own_reservations_expire(api: FakeApiServer) -> None:
    """A reservation our filter made and no bind took is released after the TTL; an
    allocation another scheduler wrote on a pod it has not bound yet stays counted."""
    theirs = {"metadata": {"name": "theirs", "namespace": "ns", "uid": "uid-theirs",
                           "labels": {"hami.io/vgpu-node": "n0"},
                           "annotations": {"hami.io/vgpu-node": "n0",
                                           "hami.io/vgpu-devices-allocated":
                                           "gpu-0,NVIDIA,3000,0:;"}},
              "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}}  # fmt: skip
    api.put(PODS, theirs)

    async def go() -> tuple[Rig, list[str]]:
        r = rig(api, nodes=1, reservation_ttl_seconds=60)
        await r.ext.sync.load_pods()
        pod = gpu_pod("ours")
        api.put(PODS, pod)
        body = orjson.dumps({"Pod": pod, "NodeNames": ["n0"]})
        assert orjson.loads(await r.ext.filter(body))["NodeNames"] == ["n0"]
        return r, r.ext.release_expired(now=time.time() + 61)

    r, released = asyncio.run(go())
    assert released == ["uid-ours"]
    assert r.ext.cluster.pod("uid-ours") is None
    held = r.ext.cluster.pod("uid-theirs")
    assert held is not None
    assert held.reserved_at is not None  # unbound, and counted
