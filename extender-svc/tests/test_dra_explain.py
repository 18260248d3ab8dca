"""The explanation API for pods on the DRA path: the extender records no decision for them, so
it answers from the pod's claims as the API holds them (where each was allocated, with the
consumed capacity) or says the pod waits on kube-scheduler's DRA allocation; a pod asking HAMi
devices, or no claims, is still the extender's own (no decision recorded: 404)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from hami_common.dra.testing import allocated_claim
from hami_common.k8s import PODS, RESOURCE_CLAIMS
from hami_common.k8s.testing import FakeApiServer
from hami_common.serving import bound_port, wait_started
from hami_common.telemetry import in_memory_tracing
from hami_extender.app import create_app
from hami_extender.dra_explain import explain_dra
from hami_extender.server import build_server
from hami_extender.settings import ExtenderSettings

Json = dict[str, Any]
GIB3 = {"memory": "3000Mi", "cores": "30"}


def _pod(name: str, *, node: str | None = None, claim: str | None = None,
         limits: dict[str, str] | None = None) -> Json:  # fmt: skip
    """A pod with one claim from the template ``t`` (``claim``: the one the controller made),
    or, with ``limits``, a pod asking HAMi devices and no claim."""
    container: Json = {"name": "main", "image": "pause"}
    spec: Json = {"containers": [container]}
    if limits:
        container["resources"] = {"limits": limits}
    else:
        spec["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t"}]
        container["resources"] = {"claims": [{"name": "gpu"}]}
    if node:
        spec["nodeName"] = node
    status = {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": claim}]}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec,
            "status": status if claim else {}}  # fmt: skip


def _claim(name: str, node: str, pod: str) -> Json:
    claim = allocated_claim(name, namespace="ns", driver="gpu.hami.io", pool=node,
                            devices=[("gpu-1", GIB3)])  # fmt: skip
    claim["status"]["allocation"]["nodeSelector"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    ]}  # fmt: skip
    claim["status"]["reservedFor"] = [{"resource": "pods", "name": pod, "uid": f"uid-{pod}"}]
    return claim


def _never_asks(_: Json) -> bool:
    return False


def test_a_bound_pod_says_where_its_claim_was_allocated_with_what_capacity() -> None:
    api = FakeApiServer()
    api.add(PODS, _pod("p", node="n1", claim="p-gpu-abc"))
    api.add(RESOURCE_CLAIMS, _claim("p-gpu-abc", "n1", "p"))

    async def main() -> Json | None:
        async with api.client() as client:
            return await explain_dra(client, "ns", "p", _never_asks)

    got = asyncio.run(main())
    assert got is not None
    assert got["path"] == "dra"
    assert got["summary"] == "bound to node n1 (DRA: n1/gpu-1 (cores 30, memory 3000Mi))"
    (claim,) = got["claims"]
    assert (claim["name"], claim["claim"], claim["state"], claim["node"]) == (
        "gpu", "p-gpu-abc", "allocated", "n1")  # fmt: skip
    (device,) = claim["devices"]
    assert device["consumedCapacity"] == GIB3
    assert device["shareID"]
    assert claim["reservedFor"] == ["p"]


def test_a_pending_pod_waits_on_kube_schedulers_allocation() -> None:
    api = FakeApiServer()
    api.add(PODS, _pod("fresh"))  # the controller has not made its claim yet
    api.add(PODS, _pod("waiting", claim="w-gpu"))
    unallocated = _claim("w-gpu", "n1", "waiting")
    del unallocated["status"]
    api.add(RESOURCE_CLAIMS, unallocated)
    api.add(PODS, _pod("allocated", claim="a-gpu"))  # allocated, not bound yet
    api.add(RESOURCE_CLAIMS, _claim("a-gpu", "n2", "allocated"))

    async def main() -> list[Json | None]:
        async with api.client() as client:
            return [await explain_dra(client, "ns", p, _never_asks)
                    for p in ("fresh", "waiting", "allocated")]  # fmt: skip

    fresh, waiting, allocated = asyncio.run(main())
    assert fresh is not None
    assert waiting is not None
    assert allocated is not None
    assert fresh["summary"] == (
        "pending: DRA claims wait on kube-scheduler's allocation (gpu not created yet); "
        "kube-scheduler's events on the pod say why"
    )
    assert fresh["claims"][0]["template"] == "t"
    assert waiting["summary"].startswith(
        "pending: DRA claims wait on kube-scheduler's allocation (w-gpu not allocated)"
    )
    assert allocated["summary"] == (
        "DRA claims allocated by kube-scheduler on node n2 (n2/gpu-1 (cores 30, memory "
        "3000Mi)); waiting for the bind"
    )


def test_not_a_dra_pod_is_left_to_the_extender() -> None:
    api = FakeApiServer()
    api.add(PODS, _pod("hami", limits={"nvidia.com/gpu": "1"}))
    api.add(PODS, _pod("both", claim="c"))

    async def main() -> list[Json | None]:
        async with api.client() as client:
            return [
                await explain_dra(client, "ns", "hami", _never_asks),  # no claims
                await explain_dra(client, "ns", "gone", _never_asks),
                await explain_dra(client, "ns", "both", lambda _: True),  # asks HAMi devices
            ]

    assert asyncio.run(main()) == [None, None, None]


def test_the_explain_api_answers_for_a_dra_pod() -> None:
    """Through the served app: a DRA pod is explained from its claims; a pod asking HAMi
    devices that the extender never filtered is still "no decision recorded"."""
    api = FakeApiServer()
    api.add(PODS, _pod("p", node="n1", claim="p-gpu-abc"))
    api.add(RESOURCE_CLAIMS, _claim("p-gpu-abc", "n1", "p"))
    api.add(PODS, _pod("hami", limits={"nvidia.com/gpu": "1"}))

    async def main() -> list[tuple[int, Json]]:
        settings = ExtenderSettings(host="127.0.0.1", port=0)
        provider, _ = in_memory_tracing("hami-extender")
        server = build_server(settings, create_app(settings, client=api.client(),
                                                   tracer_provider=provider))  # fmt: skip
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(30):
                await wait_started(server, serving)
            url = f"http://127.0.0.1:{bound_port(server)}/api/v1/explain/ns"
            async with httpx.AsyncClient(timeout=10) as http:
                answers = [await http.get(f"{url}/{p}") for p in ("p", "hami")]
            return [(a.status_code, orjson.loads(a.content)) for a in answers]
        finally:
            server.should_exit = True
            await serving

    (dra_status, dra), (hami_status, hami) = asyncio.run(main())
    assert dra_status == 200, dra
    assert dra["summary"] == "bound to node n1 (DRA: n1/gpu-1 (cores 30, memory 3000Mi))"
    assert hami_status == 404
    assert "no decision recorded for pod ns/hami" in hami["error"]
