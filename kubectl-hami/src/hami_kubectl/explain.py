"""``kubectl hami explain POD``: why it is pending, or where it landed and on which devices,
with its trace. What the API server holds is always enough (the pod, its allocation annotations,
the extender's ``FilteringFailed`` Events); the extender's explanation API (``--extender-url``)
adds each node's reason at the last filter. A pod on the DRA path shows its claims' allocation
(device, share, memory and cores consumed), and while pending kube-scheduler's own reason."""

from __future__ import annotations

import re
from typing import Any

import hami_rustcore as core
from hami_common.k8s import EVENTS, PODS, RESOURCE_CLAIMS, KubeClient, NotFound
from hami_common.protocol.annotations import BIND_PHASE
from hami_common.telemetry import pod_trace_id

from hami_kubectl.output import table
from hami_kubectl.remote import Extender, RemoteError
from hami_kubectl.state import holdings

Json = dict[str, Any]
_COUNTED = re.compile(r"(\d+) (?:devices|nodes) ([A-Za-z]+)")


def top_reason(text: str) -> str:
    """The most frequent reason of a FilteringFailed message (``... 8 devices
    CardTypeMismatch, 2 devices CardInsufficientMemory``)."""
    counted = [(int(n), r) for n, r in _COUNTED.findall(text)]
    return max(counted)[1] if counted else ""


async def explain(
    client: KubeClient, namespace: str, name: str, *, extender: Extender | None,
    traces_url: str,
) -> Json:  # fmt: skip
    pod = await client.get(PODS, name, namespace=namespace)
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    annotations = meta.get("annotations") or {}
    doc: Json = {"pod": f"{namespace}/{name}", "phase": status.get("phase", "Unknown"),
                 "node": spec.get("nodeName") or None,
                 "bindPhase": annotations.get(BIND_PHASE)}  # fmt: skip
    doc["devices"] = [
        {"container": h.container, "device": h.uuid, "vendor": h.vendor,
         "memoryMiB": h.memory_mib, "cores": h.cores}
        for h in holdings(pod)
    ]  # fmt: skip
    if spec.get("resourceClaims"):
        doc["claims"] = await _claims(client, pod)
    record: Json | None = None
    if extender is not None:
        try:
            record = extender.explain(namespace, name)
        except RemoteError as exc:
            doc["extenderError"] = str(exc)
    if record is not None and record.get("uid") != meta.get("uid"):
        record = None  # an earlier pod of the same name
    if record is not None and record.get("path") == "dra":
        # the extender's answer for a DRA pod is read from the claims shown here already;
        # kube-scheduler's own reason (its events, PodScheduled) says more while it waits
        record = None
    if not doc["node"]:
        doc.update(await _pending(client, pod, record))
    elif record is not None:
        doc["summary"] = record.get("summary")
    trace_id = pod_trace_id(pod)
    doc["trace"] = {"id": trace_id} if trace_id else None
    if trace_id and traces_url:
        base = traces_url.rstrip("/")
        doc["trace"].update({"url": f"{base}/trace/{trace_id}",
                             "api": f"{base}/api/v3/traces/{trace_id}"})  # fmt: skip
    return doc


def _quantity(value: Any, unit: int = 1) -> int | None:
    """A consumed capacity in ``unit`` (rounded up); None when absent or not a quantity."""
    if value is None:
        return None
    try:
        return -(-core.quantity_value(str(value)) // unit)
    except core.DecodeError:
        return None


async def _claims(client: KubeClient, pod: Json) -> list[Json]:
    """The pod's ResourceClaims (DRA path): what the scheduler allocated in each."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    made = {s.get("name"): s.get("resourceClaimName")
            for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}  # fmt: skip
    out: list[Json] = []
    for entry in spec.get("resourceClaims") or []:
        name = entry.get("resourceClaimName") or made.get(entry.get("name"))
        if not name:
            out.append({"claim": entry.get("name"), "state": "not created yet"})
            continue
        try:
            claim = await client.get(RESOURCE_CLAIMS, name, namespace=meta["namespace"])
        except NotFound:
            out.append({"claim": name, "state": "not found"})
            continue
        allocation = (claim.get("status") or {}).get("allocation")
        if not allocation:
            out.append({"claim": name, "state": "not allocated"})
            continue
        for r in (allocation.get("devices") or {}).get("results") or []:
            consumed = r.get("consumedCapacity") or {}
            out.append({
                "claim": name, "state": "allocated", "driver": r.get("driver"),
                "node": r.get("pool"), "device": r.get("device"), "shareID": r.get("shareID"),
                "memoryMiB": _quantity(consumed.get("memory"), 1 << 20),
                "cores": _quantity(consumed.get("cores")),
            })  # fmt: skip
    return out


async def _pending(client: KubeClient, pod: Json, record: Json | None) -> Json:
    meta = pod["metadata"]
    out: Json = {"pending": True}
    if record is not None:
        steps = record.get("steps") or []
        last: Json = next((s for s in reversed(steps) if s.get("step") == "filter"), {})
        reasons = last.get("reasons") or {}
        out["summary"] = record.get("summary")
        out["reason"] = max(reasons.items(), key=lambda kv: (kv[1], kv[0]))[0] if reasons else ""
        out["nodes"] = dict(sorted((last.get("failed") or {}).items()))
        return out
    events = await client.list(
        EVENTS, namespace=meta["namespace"],
        field_selector=f"involvedObject.name={meta['name']},involvedObject.uid={meta['uid']}",
    )  # fmt: skip
    failed = [e for e in events.get("items") or [] if e.get("reason") == "FilteringFailed"]
    failed.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    if failed:
        message = str(failed[-1].get("message", ""))
        out.update(summary=message, reason=top_reason(message))
        return out
    conditions = (pod.get("status") or {}).get("conditions") or []
    scheduled: Json = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
    out["summary"] = scheduled.get("message") or "not filtered by the extender yet"
    out["reason"] = scheduled.get("reason") or ""
    return out


def describe(doc: Json) -> str:
    """kubectl describe's style: one field a line, tables indented."""
    lines = [f"Pod:        {doc['pod']}", f"Phase:      {doc['phase']}"]
    if doc.get("pending"):
        lines.append(f"Status:     pending: {doc.get('summary') or ''}".rstrip())
        if doc.get("reason"):
            lines.append(f"Reason:     {doc['reason']}")
        if doc.get("nodes"):
            lines.append("Nodes:      (each node's reason at the last filter)")
            nodes = table(["node", "reason"], list(doc["nodes"].items()))
            lines += ["  " + r for r in nodes.splitlines()]
    else:
        phase = f" (bind-phase {doc['bindPhase']})" if doc.get("bindPhase") else ""
        lines.append(f"Node:       {doc['node']}{phase}")
        if doc.get("summary"):
            lines.append(f"Extender:   {doc['summary']}")
    if doc["devices"]:
        lines.append("Devices:")
        rows = [[d["container"], d["device"], d["vendor"], f"{d['memoryMiB']}Mi",
                 f"{d['cores']}%"] for d in doc["devices"]]  # fmt: skip
        lines += ["  " + r for r in table(["container", "device", "vendor", "memory", "cores"],
                                          rows).splitlines()]  # fmt: skip
    if doc.get("claims"):
        lines.append("Claims:     (DRA: what kube-scheduler allocated)")
        rows = [[c["claim"], c.get("node") or "", c.get("device") or c["state"],
                 "" if c.get("memoryMiB") is None else f"{c['memoryMiB']}Mi",
                 "" if c.get("cores") is None else f"{c['cores']}%"]
                for c in doc["claims"]]  # fmt: skip
        lines += ["  " + r for r in table(["claim", "node", "device", "memory", "cores"],
                                          rows).splitlines()]  # fmt: skip
    trace = doc.get("trace")
    if trace:
        lines.append(f"Trace:      {trace['id']}")
        lines += [f"  {trace[k]}" for k in ("url", "api") if trace.get(k)]
    if doc.get("extenderError"):
        lines.append(f"Note:       the extender could not be asked: {doc['extenderError']}")
    return "\n".join(lines)
