"""``kubectl hami top nodes|pods``: per device and per container, what is promised (from the
allocation annotations, as the extender counts it) against what is used (from Prometheus, which
scrapes every node's monitor: ``--prometheus-url``; without it the used columns are empty)."""

from __future__ import annotations

from typing import Any

from hami_kubectl.output import table
from hami_kubectl.remote import Prometheus, RemoteError
from hami_kubectl.state import Cluster

Json = dict[str, Any]
MIB = 2**20


def _by(samples: list[tuple[dict[str, str], float]], *keys: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for labels, value in samples:
        key = tuple(labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0.0) + value
    return out


def _used(prom: Prometheus | None, queries: dict[str, str], keys: tuple[str, ...]) -> tuple[
    dict[str, dict[tuple[str, ...], float]], str
]:  # fmt: skip
    if prom is None:
        return {}, ""
    try:
        return {name: _by(prom.query(q), *keys) for name, q in queries.items()}, ""
    except RemoteError as exc:
        return {}, str(exc)


def nodes(cluster: Cluster, prom: Prometheus | None, node: str = "") -> Json:
    promised = cluster.promised()
    used, error = _used(prom, {
        "memory": "hami_host_gpu_memory_used_bytes",
        "util": "hami_host_gpu_utilization_ratio",
    }, ("device_uuid",))  # fmt: skip
    rows = []
    for d in cluster.devices:
        if node and d.node != node:
            continue
        mem, cores, count = promised.get(d.uuid, (0, 0, 0))
        mem_used = used.get("memory", {}).get((d.uuid,))
        util = used.get("util", {}).get((d.uuid,))
        rows.append({
            "node": d.node, "index": d.index, "device": d.uuid, "type": d.type,
            "healthy": d.healthy, "memoryMiB": d.memory_mib, "memoryPromisedMiB": mem,
            "memoryUsedMiB": None if mem_used is None else round(mem_used / MIB),
            "cores": d.cores, "coresPromised": cores,
            "utilization": None if util is None else round(util, 1), "containers": count,
        })  # fmt: skip
    return {"devices": rows, **({"prometheusError": error} if error else {})}


def pods(cluster: Cluster, prom: Prometheus | None, namespace: str | None, pod: str = "") -> Json:
    used, error = _used(prom, {
        "memory": "hami_vgpu_memory_used_bytes",
        "util": "hami_container_device_utilization_ratio",
    }, ("namespace", "pod", "container", "device_uuid"))  # fmt: skip
    rows = []
    for h in cluster.holdings:
        if (namespace is not None and h.namespace != namespace) or (pod and h.pod != pod):
            continue
        key = (h.namespace, h.pod, h.container, h.uuid)
        mem_used = used.get("memory", {}).get(key)
        util = used.get("util", {}).get(key)
        rows.append({
            "namespace": h.namespace, "pod": h.pod, "container": h.container, "node": h.node,
            "device": h.uuid, "memoryPromisedMiB": h.memory_mib,
            "memoryUsedMiB": None if mem_used is None else round(mem_used / MIB),
            "coresPromised": h.cores, "utilization": None if util is None else round(util, 1),
        })  # fmt: skip
    rows.sort(key=lambda r: (r["namespace"], r["pod"], r["container"], r["device"]))
    return {"containers": rows, **({"prometheusError": error} if error else {})}


def _mi(value: int | None) -> str | None:
    return None if value is None else f"{value}Mi"


def _pct(value: float | int | None) -> str | None:
    return None if value is None else f"{value}%"


def nodes_table(doc: Json, wide: bool = False) -> str:
    headers = ["node", "device", "type", "memory(promised)", "memory(used)", "memory(total)",
               "cores(promised)", "util", "containers"]  # fmt: skip
    rows = [[d["node"], d["index"], d["type"], _mi(d["memoryPromisedMiB"]),
             _mi(d["memoryUsedMiB"]), _mi(d["memoryMiB"]), _pct(d["coresPromised"]),
             _pct(d["utilization"]), d["containers"]] for d in doc["devices"]]  # fmt: skip
    if wide:
        headers.insert(2, "uuid")
        for row, d in zip(rows, doc["devices"], strict=True):
            row.insert(2, d["device"])
    return _with_note(table(headers, rows), doc)


def pods_table(doc: Json, all_namespaces: bool, wide: bool = False) -> str:
    headers = ["namespace"] if all_namespaces else []
    headers += ["pod", "container", "node", "device", "memory(promised)", "memory(used)",
                "cores(promised)", "util"]  # fmt: skip
    rows = []
    for c in doc["containers"]:
        row = [c["namespace"]] if all_namespaces else []
        device = c["device"] if wide else c["device"][:12]
        row += [
            c["pod"],
            c["container"],
            c["node"],
            device,
            _mi(c["memoryPromisedMiB"]),
            _mi(c["memoryUsedMiB"]),
            _pct(c["coresPromised"]),
            _pct(c["utilization"]),
        ]
        rows.append(row)
    return _with_note(table(headers, rows), doc)


def _with_note(text: str, doc: Json) -> str:
    if doc.get("prometheusError"):
        text += f"\n(used columns empty: Prometheus could not be asked: {doc['prometheusError']})"
    return text
