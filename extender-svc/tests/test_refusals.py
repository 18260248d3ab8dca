"""What the extender refuses to filter or bind, and that a refusal writes nothing: a device pod of
another scheduler (kube-scheduler calls its extenders for every profile), a bind of a pod this
extender holds no reservation for, or not for that node, or under another name, or bound
already. A pod filtered by a previous leader that wrote its allocation at filter
(``--persist-reservation filter``) still binds after a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hami_common.k8s import WatchEvent
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.annotations import NODE_LOCK, VGPU_NODE
from hami_extender.testing import Rig, extender_rig

Json = dict[str, Any]
PODS = "/api/v1/namespaces/ns/pods"


def gpu_pod(name: str, scheduler: str | None = "hami-scheduler", mem: int = 4000) -> Json:
    spec: Json = {"containers": [{"name": "c", "resources": {"limits": {
        "nvidia.com/gpu": "1", "nvidia.com/gpumem": str(mem)}}}]}  # fmt: skip
    if scheduler is not None:
        spec["schedulerName"] = scheduler
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}, "spec": spec}


def bind_args(name: str, node: str = "n0", uid: str | None = None) -> bytes:
    return orjson.dumps({"PodName": name, "PodNamespace": "ns", "PodUID": uid or f"uid-{name}",
                         "Node": node})  # fmt: skip


async def filter_pod(r: Rig, pod: Json, nodes: list[str] | None = None) -> Json:
    body = orjson.dumps({"Pod": pod, "NodeNames": nodes or ["n0"]})
    answer: Json = orjson.loads(await r.ext.filter(body))
    return answer


def writes(api: FakeApiServer) -> list[tuple[str, str]]:
    return [(method, url) for method, url in api.requests if method != "GET"]


def decisions(r: Rig, verb: str, reason: str) -> float | None:
    return r.registry.get_sample_value(
        "hami_extender_decisions_total", {"verb": verb, "outcome": "error", "reason": reason}
    )


@pytest.mark.parametrize("scheduler", ["default-scheduler", None, "volcano"])
def test_a_device_pod_of_another_scheduler_is_refused_at_filter(
    api: FakeApiServer, scheduler: str | None
) -> None:
    async def go() -> tuple[Rig, Json]:
        r = extender_rig(api)
        return r, await filter_pod(r, gpu_pod("p", scheduler))

    r, answer = asyncio.run(go())
    named = scheduler or "default-scheduler"  # what the API server defaults an empty one to
    assert answer["Error"] == (
        f"pod ns/p names schedulerName {named!r}; this hami-extender places only pods of "
        "'hami-scheduler' (the webhook sets it on device pods)"
    )
    assert answer["NodeNames"] is None
    assert r.ext.cluster.pod("uid-p") is None  # nothing reserved
    assert r.events.queue.empty()  # no Event on a pod another scheduler owns
    assert decisions(r, "filter", "other-scheduler") == 1.0
    explained = r.ext.explain.get("ns", "p")
    assert explained is not None
    assert explained["steps"][-1]["outcome"] == "refused"


def test_a_pod_without_devices_passes_whatever_its_scheduler(api: FakeApiServer) -> None:
    pod = gpu_pod("plain", "default-scheduler")
    pod["spec"]["containers"][0]["resources"] = {}

    async def go() -> Json:
        return await filter_pod(extender_rig(api), pod, ["n0", "n1"])

    answer = asyncio.run(go())
    assert (answer["Error"], answer["NodeNames"]) == ("", ["n0", "n1"])


def test_a_bind_without_a_reservation_writes_nothing(api: FakeApiServer) -> None:
    """Anyone could once /bind any pending pod: the lock was taken and left held."""
    api.put(PODS, gpu_pod("stranger", "default-scheduler"))

    async def go() -> tuple[Rig, Json]:
        r = extender_rig(api)
        return r, orjson.loads(await r.ext.bind(bind_args("stranger")))

    r, answer = asyncio.run(go())
    assert answer["Error"] == (
        "pod ns/stranger has no device reservation on node n0 (none, or it expired); it will "
        "be filtered again"
    )
    assert writes(api) == []
    assert NODE_LOCK not in (api.get("/api/v1/nodes/n0")["metadata"].get("annotations") or {})
    assert decisions(r, "bind", "no-reservation") == 1.0


def test_a_bind_must_name_the_node_and_the_pod_that_were_filtered(api: FakeApiServer) -> None:
    api.put(PODS, gpu_pod("p"))
    api.put(PODS, gpu_pod("other"))

    async def go() -> tuple[Rig, list[str]]:
        r = extender_rig(api, nodes=2)
        assert (await filter_pod(r, gpu_pod("p"), ["n1"]))["NodeNames"] == ["n1"]
        api.requests.clear()
        errors = [orjson.loads(await r.ext.bind(args))["Error"] for args in (
            bind_args("p", node="n0"),  # filtered onto n1
            bind_args("other", node="n1", uid="uid-p"),  # p's UID under another name
        )]  # fmt: skip
        return r, errors

    r, errors = asyncio.run(go())
    assert errors == [
        "pod ns/p has no device reservation on node n0 on node n1; it will be filtered again",
        "pod UID uid-p is ns/p, not ns/other; not binding",
    ]
    assert writes(api) == []
    assert r.ext.cluster.pod("uid-p") is not None  # p's own reservation stands


def test_a_bound_pod_is_not_bound_again(api: FakeApiServer) -> None:
    api.put(PODS, gpu_pod("p"))

    async def go() -> str:
        r = extender_rig(api)
        assert (await filter_pod(r, gpu_pod("p")))["NodeNames"] == ["n0"]
        assert orjson.loads(await r.ext.bind(bind_args("p")))["Error"] == ""
        api.requests.clear()
        return str(orjson.loads(await r.ext.bind(bind_args("p")))["Error"])

    assert asyncio.run(go()) == "pod ns/p is bound already"
    assert writes(api) == []


def test_a_bound_pod_is_not_placed_again_and_keeps_its_devices(api: FakeApiServer) -> None:
    """kube-scheduler filters a pod again when the answer to its bind was lost (the extender
    died after the Binding was written): the pod keeps the devices it is bound with, nothing
    else may take them, and the answer says why."""
    api.put(PODS, gpu_pod("p"))

    async def go() -> tuple[Rig, Json]:
        r = extender_rig(api)
        assert (await filter_pod(r, gpu_pod("p")))["NodeNames"] == ["n0"]
        assert orjson.loads(await r.ext.bind(bind_args("p")))["Error"] == ""
        api.requests.clear()
        return r, await filter_pod(r, gpu_pod("p"), ["n0", "n1"])

    r, again = asyncio.run(go())
    assert again["Error"] == "pod ns/p is bound to node n0 already; it is not placed again"
    assert writes(api) == []
    held = r.ext.cluster.pod("uid-p")
    assert held is not None
    assert (held.node, held.reserved_at) == ("n0", None)
    assert decisions(r, "filter", "already-bound") == 1


async def _filtered_by_a_previous_leader(api: FakeApiServer, pod: Json) -> Rig:
    """The previous leader filtered ``pod`` with --persist-reservation filter (the allocation is
    on the pod); this one starts, lists the pods, and holds the reservation from the API."""
    api.put(PODS, pod)
    before = extender_rig(api, persist_reservation="filter")
    assert (await filter_pod(before, pod))["NodeNames"] == ["n0"]
    stored = api.get(f"{PODS}/{pod['metadata']['name']}")
    assert stored["metadata"]["labels"][VGPU_NODE] == "n0"
    after = extender_rig(api, persist_reservation="filter")
    after.ext.sync.handle_pod_event(WatchEvent("SYNC", {"items": [stored]}))
    assert after.ext.cluster.pod(pod["metadata"]["uid"]) is not None
    api.requests.clear()
    return after


def test_a_pod_filtered_by_the_previous_leader_still_binds_after_a_restart(
    api: FakeApiServer,
) -> None:
    async def go() -> Json:
        r = await _filtered_by_a_previous_leader(api, gpu_pod("p"))
        return orjson.loads(await r.ext.bind(bind_args("p")))

    assert asyncio.run(go()) == {"Error": ""}
    assert api.get(f"{PODS}/p")["spec"]["nodeName"] == "n0"
    assert ("GET", "https://fake.invalid/api/v1/namespaces/ns/pods/p") in api.requests


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ({"spec": {"schedulerName": "default-scheduler"}},
         "pod ns/p names schedulerName 'default-scheduler', not 'hami-scheduler'; not binding",
         "other-scheduler"),
        ({"metadata": {"uid": "uid-new"}},
         "pod ns/p was replaced (UID uid-new, not uid-p); not binding", "wrong-pod"),
        ({"metadata": {"labels": {VGPU_NODE: "n1"}}},
         "pod ns/p carries no allocation for node n0; it will be filtered again",
         "no-reservation"),
        ({"spec": {"nodeName": "n2"}}, "pod ns/p is bound already, to n2", "already-bound"),
        (None, "pod ns/p does not exist", "no-reservation"),
    ],
)  # fmt: skip
def test_a_reservation_from_the_api_binds_only_the_pod_it_is_on(
    api: FakeApiServer, change: Json | None, error: str, reason: str
) -> None:
    """A reservation this process did not make is read back first: a pod that another scheduler
    owns, that was replaced, moved or bound since, or deleted, is not bound and nothing is
    written."""

    async def go() -> tuple[Rig, Json]:
        r = await _filtered_by_a_previous_leader(api, gpu_pod("p"))
        if change is None:
            del api.objects[f"{PODS}/p"]
        else:
            current = api.get(f"{PODS}/p")
            for part, values in change.items():
                current[part].update(values)
        return r, orjson.loads(await r.ext.bind(bind_args("p")))

    r, answer = asyncio.run(go())
    assert answer == {"Error": error}
    assert writes(api) == []
    assert decisions(r, "bind", reason) == 1.0
    queued = [r.events.queue.get_nowait()[0]["reason"] for _ in range(r.events.queue.qsize())]
    assert queued == ([] if reason in ("other-scheduler", "wrong-pod") else ["BindingFailed"])
