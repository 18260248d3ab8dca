"""The explanation of a pod on the DRA path, for ``GET /api/v1/explain/{namespace}/{pod}``.

The extender never sees such a pod (it asks no HAMi device; kube-scheduler's DynamicResources
plugin allocates its ResourceClaims), so it records no decision for it. Instead of "no decision
recorded", the API answers from the pod and its claims as the API server holds them: where each
claim was allocated (node, device, share, consumed capacity: ``status.allocation``) or that the
pod waits on kube-scheduler's DRA allocation. RBAC: pods get, resourceclaims get (the chart
grants the second with ``global.dra.enabled``); a claim that cannot be read says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hami_common.k8s import PODS, RESOURCE_CLAIMS, ApiError, KubeClient, NotFound

Json = dict[str, Any]
PATH = "dra"


async def explain_dra(
    client: KubeClient, namespace: str, name: str, asks_devices: Callable[[Json], bool]
) -> Json | None:
    """The pod's DRA explanation; None when it is not a DRA pod (not found, no
    ``resourceClaims``, or ``asks_devices``: it asks HAMi devices, the extender's to explain).
    `ApiError` when the pod cannot be read."""
    try:
        pod: Json = await client.get(PODS, name, namespace=namespace)
    except NotFound:
        return None
    spec = pod.get("spec") or {}
    if not spec.get("resourceClaims") or asks_devices(pod):
        return None
    claims = [await _claim(client, pod, entry) for entry in spec["resourceClaims"]]
    return {
        "namespace": namespace,
        "pod": name,
        "uid": pod["metadata"].get("uid"),
        "path": PATH,
        "summary": _summary(spec.get("nodeName"), claims),
        "claims": claims,
        "steps": [],
    }


async def _claim(client: KubeClient, pod: Json, entry: Json) -> Json:
    """One of the pod's claims: its state, and with ``allocated`` each device result."""
    made = {s.get("name"): s.get("resourceClaimName")
            for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}  # fmt: skip
    ref = entry.get("name")
    name = entry.get("resourceClaimName") or made.get(ref)
    if not name:
        # kube-controller-manager's resourceclaim controller makes it from the template
        return {"name": ref, "claim": None, "state": "not created yet",
                "template": entry.get("resourceClaimTemplateName")}  # fmt: skip
    out: Json = {"name": ref, "claim": name}
    try:
        claim = await client.get(RESOURCE_CLAIMS, name, namespace=pod["metadata"]["namespace"])
    except NotFound:
        return {**out, "state": "not found"}
    except ApiError as exc:
        return {**out, "state": "unreadable", "error": str(exc)}
    status = claim.get("status") or {}
    allocation = status.get("allocation")
    if not allocation:
        return {**out, "state": "not allocated"}
    node = _node(allocation)
    devices = [
        {
            "request": r.get("request"), "driver": r.get("driver"), "pool": r.get("pool"),
            "device": r.get("device"),
            **({"shareID": r["shareID"]} if r.get("shareID") else {}),
            **({"consumedCapacity": r["consumedCapacity"]} if r.get("consumedCapacity") else {}),
        }
        for r in (allocation.get("devices") or {}).get("results") or []
    ]  # fmt: skip
    reserved = [r.get("name") for r in status.get("reservedFor") or []]
    return {**out, "state": "allocated", "node": node, "devices": devices,
            "reservedFor": reserved}  # fmt: skip


def _node(allocation: Json) -> str | None:
    """The node an allocation is bound to: the single node its node selector names
    (``metadata.name`` or ``nodeName`` field), as kube-scheduler writes it for a node-local
    device."""
    for term in (allocation.get("nodeSelector") or {}).get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") in ("metadata.name", "nodeName") and field.get("values"):
                return str(field["values"][0])
    return None


def _device_text(device: Json) -> str:
    consumed = device.get("consumedCapacity") or {}
    share = ", ".join(f"{k} {v}" for k, v in sorted(consumed.items()))
    return f"{device.get('pool')}/{device.get('device')}" + (f" ({share})" if share else "")


def _summary(node: str | None, claims: list[Json]) -> str:
    """One sentence: bound and where, allocated and waiting for the bind, or what the pod waits
    on."""
    waiting = [c for c in claims if c["state"] != "allocated"]
    if waiting:
        states = ", ".join(f"{c['claim'] or c['name']} {c['state']}" for c in waiting)
        where = f"bound to node {node}, but " if node else "pending: "
        return (f"{where}DRA claims wait on kube-scheduler's allocation ({states}); "
                "kube-scheduler's events on the pod say why")  # fmt: skip
    devices = "; ".join(_device_text(d) for c in claims for d in c["devices"])
    if node:
        return f"bound to node {node} (DRA: {devices})"
    nodes = sorted({c["node"] for c in claims if c.get("node")})
    return (f"DRA claims allocated by kube-scheduler on node {', '.join(nodes) or '?'} "
            f"({devices}); waiting for the bind")  # fmt: skip
