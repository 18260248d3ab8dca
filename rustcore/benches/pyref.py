"""A straightforward pure-Python implementation of the same fit and score rules, the baseline
that `bench_core.py` measures the Rust core against (HAMi's approach: recompute on every call)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RefDevice:
    id: str
    index: int
    count: int
    devmem: int
    devcore: int
    type: str
    numa: int = 0
    health: bool = True
    used: int = 0
    usedmem: int = 0
    usedcores: int = 0


@dataclass
class RefNode:
    name: str
    devices: list[RefDevice] = field(default_factory=list)
    cordoned: set[str] = field(default_factory=set)


@dataclass
class RefRequest:
    count: int
    mem: int
    cores: int
    use_types: list[str] = field(default_factory=list)
    nouse_uuids: list[str] = field(default_factory=list)


def device_score(d: RefDevice, r: RefRequest) -> float:
    if d.count == 0 or d.devcore == 0 or d.devmem == 0:
        return 0.0
    return 10 * (
        (1 + d.used) / d.count
        + (r.cores + d.usedcores) / d.devcore
        + (r.mem + d.usedmem) / d.devmem
    )


def check(node: RefNode, d: RefDevice, r: RefRequest) -> str | None:
    if not d.health:
        return "CardNotHealth"
    if d.id in node.cordoned:
        return "CardCordoned"
    if r.use_types and not any(t in d.type.lower() for t in r.use_types):
        return "CardTypeMismatch"
    if d.id in r.nouse_uuids:
        return "CardUuidMismatch"
    if d.count <= d.used:
        return "CardTimeSlicingExhausted"
    if d.devmem - d.usedmem < r.mem:
        return "CardInsufficientMemory"
    if d.devcore - d.usedcores < r.cores:
        return "CardInsufficientCore"
    if d.devcore == 100 and r.cores == 100 and d.used > 0:
        return "ExclusiveDeviceAllocateConflict"
    if r.cores == 0 and d.devcore and d.usedcores == d.devcore:
        return "CardComputeUnitsExhausted"
    return None


def fit_node(node: RefNode, r: RefRequest) -> tuple[float, list[str]] | str:
    order = sorted(node.devices, key=lambda d: (device_score(d, r), d.numa, d.index))
    reasons: dict[str, int] = {}
    chosen: list[RefDevice] = []
    for d in order:
        why = check(node, d, r)
        if why:
            reasons[why] = reasons.get(why, 0) + 1
            continue
        chosen.append(d)
        if len(chosen) == r.count:
            break
    if len(chosen) < r.count:
        n = len(node.devices)
        return ", ".join(sorted(f"{c}/{n} {k}" for k, c in reasons.items()))
    used = sum(d.used for d in node.devices) + len(chosen)
    count = sum(d.count for d in node.devices)
    cores = sum(d.usedcores for d in node.devices) + r.cores * len(chosen)
    tcores = sum(d.devcore for d in node.devices)
    mem = sum(d.usedmem for d in node.devices) + r.mem * len(chosen)
    tmem = sum(d.devmem for d in node.devices)
    return 10 * (used / count + cores / tcores + mem / tmem), [d.id for d in chosen]


def filter_nodes(
    nodes: dict[str, RefNode], candidates: list[str], r: RefRequest
) -> tuple[str | None, dict[str, str]]:
    best: tuple[float, str] | None = None
    failed: dict[str, str] = {}
    for name in candidates:
        node = nodes.get(name)
        if node is None:
            failed[name] = "node unregistered"
            continue
        out = fit_node(node, r)
        if isinstance(out, str):
            failed[name] = out
            continue
        score = out[0]
        if best is None or score > best[0] or (score == best[0] and name < best[1]):
            best = (score, name)
    return (best[1] if best else None), failed
