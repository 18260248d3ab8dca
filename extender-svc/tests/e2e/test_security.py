"""What reaches the extender that kube-scheduler calls, on the real control plane: a caller
without kube-scheduler's client certificate gets 403 from the verbs (or no TLS at all), while
health and explanations stay open; a pod of another scheduler can be neither filtered nor bound,
and the node lock stays free; a body nested 1,000 levels deep is an error in the result; and
an unschedulable pod that does not exist gets no Event."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from typing import Any

import httpx
import orjson
import pytest
from hami_common.k8s import EVENTS, NODES, PODS
from hami_common.protocol.annotations import NODE_LOCK
from hami_e2e.nodes import NodePool
from hami_e2e.stack import HamiStack
from hami_extender.testing import gpu_pod

pytestmark = pytest.mark.e2e
Json = dict[str, Any]
LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8000"}


async def scheduler_post(stack: HamiStack, verb: str, body: bytes) -> httpx.Response:
    async with stack.extender_http(timeout=40) as http:
        return await http.post(f"{stack.extender_url()}/{verb}", content=body)


def test_only_kube_schedulers_certificate_reaches_the_verbs(hami_stack: HamiStack) -> None:
    pod = {"metadata": {"uid": "u", "name": "p", "namespace": "ns"}, "spec": {"containers": []}}
    body = orjson.dumps({"Pod": pod, "NodeNames": ["n1"]})
    url = hami_stack.extender_url()

    async def go() -> tuple[Any, ...]:
        trust = ssl.create_default_context(cafile=str(hami_stack.extender_tls.ca_file))
        async with httpx.AsyncClient(verify=trust, timeout=10) as anonymous:
            verbs = [(await anonymous.post(f"{url}/{verb}", content=body)).status_code
                     for verb in ("filter", "bind")]  # fmt: skip
            health = (await anonymous.get(f"{url}/healthz")).status_code
            explain = (await anonymous.get(f"{url}/api/v1/explain/ns/p")).status_code
        async with httpx.AsyncClient(timeout=10) as plain:
            try:
                await plain.post(f"http://127.0.0.1:{hami_stack.extender_port}/filter",
                                 content=body)  # fmt: skip
                plaintext = "answered"
            except httpx.HTTPError as exc:
                plaintext = type(exc).__name__
        scheduler = await scheduler_post(hami_stack, "filter", body)
        return verbs, health, explain, plaintext, scheduler

    verbs, health, explain, plaintext, scheduler = asyncio.run(go())
    assert verbs == [403, 403]
    assert (health, explain) == (200, 404)  # open: probes and people need no certificate
    assert plaintext != "answered"
    assert scheduler.status_code == 200
    assert scheduler.json()["NodeNames"] == ["n1"]  # no devices: passes


def test_a_pod_of_another_scheduler_is_neither_filtered_nor_bound(
    hami_stack: HamiStack, hami_ns: str, gpu_nodes: Any
) -> None:
    """Once, anyone could /filter then /bind any pending pod, and the node lock stayed held."""
    [node] = gpu_nodes(NodePool(name="sec", count=1, devices_per_node=2))

    async def go() -> tuple[Json, Json, Json, str | None]:
        async with hami_stack.client() as kube:
            pod = await kube.create(PODS, gpu_pod("theirs", LIMITS, scheduler="elsewhere"),
                                    namespace=hami_ns)  # fmt: skip
            filtered = (await scheduler_post(hami_stack, "filter", orjson.dumps(
                {"Pod": pod, "NodeNames": [node]}))).json()  # fmt: skip
            bound = (await scheduler_post(hami_stack, "bind", orjson.dumps({
                "PodName": "theirs", "PodNamespace": hami_ns, "PodUID": pod["metadata"]["uid"],
                "Node": node}))).json()  # fmt: skip
            after = await kube.get(PODS, "theirs", namespace=hami_ns)
            lock = ((await kube.get(NODES, node))["metadata"].get("annotations") or {}).get(
                NODE_LOCK
            )
            return filtered, bound, after, lock

    filtered, bound, after, lock = asyncio.run(go())
    assert "names schedulerName 'elsewhere'" in filtered["Error"]
    assert bound["Error"].startswith(f"pod {hami_ns}/theirs has no device reservation")
    assert lock is None
    assert not after["spec"].get("nodeName")
    assert "hami.io/vgpu-node" not in (after["metadata"].get("labels") or {})


def test_a_body_nested_1000_levels_deep_is_an_error_in_the_result(hami_stack: HamiStack) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    body = (b'{"Pod":{"metadata":{"uid":"u","name":"p","namespace":"ns"},"spec":{"x":' + deep
            + b'}},"NodeNames":["n1"]}')  # fmt: skip
    answer = asyncio.run(scheduler_post(hami_stack, "filter", body))
    assert answer.status_code == 200
    assert "JSON nested deeper than 100 levels" in answer.json()["Error"]


def test_no_event_for_an_unschedulable_pod_that_does_not_exist(
    hami_stack: HamiStack, hami_ns: str, gpu_nodes: Any
) -> None:
    """kube-scheduler's queue lags the API in a burst: filters of pods deleted meanwhile once
    left hundreds of Events behind. A pod that exists still gets its Event."""
    [node] = gpu_nodes(NodePool(name="orph", count=1, devices_per_node=1))
    huge = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "99999"}

    async def go() -> list[str]:
        async with hami_stack.client() as kube:
            ghost = gpu_pod("ghost", huge, scheduler="hami-scheduler")
            ghost["metadata"].update(namespace=hami_ns, uid=os.urandom(8).hex())
            answer = (await scheduler_post(hami_stack, "filter", orjson.dumps(
                {"Pod": ghost, "NodeNames": [node]}))).json()  # fmt: skip
            assert answer["NodeNames"] == [], answer
            # a real pod that fits nowhere, through the webhook and kube-scheduler
            await kube.create(PODS, gpu_pod("real", huge), namespace=hami_ns)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                events = (await kube.list(EVENTS, namespace=hami_ns))["items"]
                if any(e["involvedObject"]["name"] == "real" and e.get("reason")
                       == "FilteringFailed" for e in events):  # fmt: skip
                    await asyncio.sleep(2)  # the ghost's, queued first, had all this time
                    events = (await kube.list(EVENTS, namespace=hami_ns))["items"]
                    return sorted({e["involvedObject"]["name"] for e in events
                                   if e.get("reason") == "FilteringFailed"})  # fmt: skip
                await asyncio.sleep(0.3)
            raise AssertionError("the real pod's FilteringFailed Event never came")

    assert asyncio.run(go()) == ["real"]
