"""Node and pod objects turned into the core's inventory and allocations (pure functions).

Every input here was written by someone else (device plugins, users, an older extender), so
each parser returns a value or raises `ObjectError` with what was wrong; callers log it and keep
the previous state, so one bad annotation never loses what is already allocated.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hami_rustcore as core
from hami_common.protocol.annotations import (
    BIND_PHASE,
    DEVICE_CORDON,
    MIG_ALLOCATIONS,
    NODE_HANDSHAKE,
    PHASE_ALLOCATING,
    VGPU_NODE,
)

ASCEND_NODE_SOFT = "hami-vnpu-core"
"""Node annotation: ``"true"`` when the node's Ascend NPUs take soft-split (hami-core) pods."""

Json = dict[str, Any]
VendorSpecs = Mapping[str, Mapping[str, Any]]


class ObjectError(ValueError):
    """An annotation or object could not be used; the message names it."""


@dataclass(frozen=True)
class NodeInventory:
    """What a node registers: healthy devices of every vendor, pair scores, cordoned ids."""

    name: str
    devices: list[core.Device]
    pair_scores: list[tuple[str, dict[str, int]]]
    cordoned: list[str]
    fingerprint: tuple[str, ...]


def member(obj: Any, key: str) -> Json:
    """``obj[key]`` when both are objects, else an empty one: objects written by others may
    have any shape, and a wrong one must read as "absent", never raise."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _annotations(obj: Json) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    return ann if isinstance(ann, dict) else {}


def _capacity(node: Json, name: str) -> int:
    """A node's capacity of one resource as a whole number (0 when absent or not one)."""
    value = member(member(node, "status"), "capacity").get(name)
    if not isinstance(value, str | int) or isinstance(value, bool):
        return 0
    try:
        return max(0, core.quantity_value(str(value)))
    except core.CoreError:
        return 0


def needs_status(specs: VendorSpecs) -> bool:
    """Whether an inventory is read from node capacity (Cambricon's), so the node watch needs
    full objects rather than metadata."""
    return any(s.get("kind") == "cambricon" for s in specs.values())


def node_fingerprint(node: Json, specs: VendorSpecs) -> tuple[str, ...]:
    """The annotation (and capacity) values the inventory depends on: unchanged means nothing
    to redo."""
    ann = _annotations(node)
    keys = [s["register_annotation"] for s in specs.values() if s.get("register_annotation")]
    keys += [s["handshake_annotation"] for s in specs.values() if s.get("handshake_annotation")]
    keys += [DEVICE_CORDON, NODE_HANDSHAKE, "hami.io/node-nvidia-score", ASCEND_NODE_SOFT]
    values = [str(ann.get(k, "")) for k in keys]
    for s in specs.values():
        if s.get("kind") == "cambricon":
            values += [
                str(_capacity(node, str(s[k]))) for k in ("resource_cores", "resource_memory")
            ]
    return tuple(values)


def _ascend_mode(ann: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """``hami-core`` when the node's NPUs take soft-split pods: its ``hami-vnpu-core``
    annotation says so, or, without it, the cluster default (``vnpus.hamiVnpuCore``)."""
    value = ann.get(ASCEND_NODE_SOFT)
    soft = value == "true" if value is not None else bool(spec.get("soft_default"))
    return "hami-core" if soft else "template"


def _vendor_devices(
    node: Json, name: str, vendor: str, spec: Mapping[str, Any]
) -> list[core.Device]:
    """One vendor's registered devices on the node (healthy or not)."""
    ann = _annotations(node)
    if spec.get("kind") == "cambricon":
        cores = _capacity(node, str(spec["resource_cores"]))
        return core.cambricon_devices(name, cores, _capacity(node, str(spec["resource_memory"])))
    key = spec.get("register_annotation")
    text = ann.get(key) if key else None
    handshake = str(ann.get(str(spec.get("handshake_annotation") or NODE_HANDSHAKE), ""))
    if not text or handshake.startswith("Deleted"):
        return []
    mode = _ascend_mode(ann, spec) if spec.get("kind") == "ascend" else None
    try:
        return core.decode_node_devices(str(text), vendor, mode)
    except core.CoreError as exc:
        raise ObjectError(f"node {name}: annotation {key}: {exc}") from None


def node_inventory(node: Json, specs: VendorSpecs) -> NodeInventory:
    """A node's registered, healthy devices of every vendor. Unhealthy devices leave the state; a
    vendor whose plugin said goodbye (its handshake ``Deleted_...``) registers nothing. Ascend
    NPUs carry the node's split mode (``hami-core`` or ``template``); Cambricon's MLUs come from
    the node's capacity, as HAMi synthesizes them."""
    meta = member(node, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError("node without metadata.name")
    ann = _annotations(node)
    devices: list[core.Device] = []
    for vendor, spec in specs.items():
        devices.extend(d for d in _vendor_devices(node, name, vendor, spec) if d.health)
    pair_text = ann.get("hami.io/node-nvidia-score")
    pairs: list[tuple[str, dict[str, int]]] = []
    if pair_text:
        try:
            pairs = core.decode_pair_scores(str(pair_text))
        except core.CoreError:
            pairs = []  # scores only refine topology-aware placement; never block on them
    cordon = str(ann.get(DEVICE_CORDON, ""))
    cordoned = [part.strip() for part in cordon.split(",") if part.strip()]
    return NodeInventory(name, devices, pairs, cordoned, node_fingerprint(node, specs))


@dataclass(frozen=True)
class PodPlacement:
    """A placed pod as the core holds it."""

    uid: str
    namespace: str
    name: str
    node: str
    devices: list[list[core.AllocDevice]]
    init_count: int
    init_done: bool
    bound: bool
    allocated: dict[str, str]  # each vendor's allocated annotation, as written
    mig: str | None = None  # hami.io/vgpu-mig-allocations: the MIG instances it holds


def is_finished(pod: Json) -> bool:
    return member(pod, "status").get("phase") in ("Succeeded", "Failed")


def _init_done(pod: Json, init_count: int) -> bool:
    if init_count == 0:
        return False
    statuses = member(pod, "status").get("initContainerStatuses")
    if not isinstance(statuses, list) or len(statuses) < init_count:
        return False
    for status in statuses:
        terminated = member(member(status, "state"), "terminated")
        if terminated.get("exitCode") != 0:
            return False
    return True


def pod_placement(pod: Json, specs: VendorSpecs) -> PodPlacement | None:
    """The allocation a pod carries (``hami.io/vgpu-node`` plus each vendor's allocated key),
    or None when it carries none. Vendors are merged per container, in container order."""
    meta = member(pod, "metadata")
    ann = _annotations(pod)
    node = ann.get(VGPU_NODE)
    uid, ns, name = meta.get("uid"), meta.get("namespace"), meta.get("name")
    if not node or not isinstance(uid, str) or not isinstance(name, str):
        return None
    merged: list[list[core.AllocDevice]] = []
    raw: dict[str, str] = {}
    for spec in specs.values():
        text = ann.get(spec["allocated_annotation"])
        if not text:
            continue
        try:
            containers = core.decode_pod_devices(str(text))
        except core.CoreError as exc:
            raise ObjectError(
                f"pod {ns}/{name}: annotation {spec['allocated_annotation']}: {exc}"
            ) from None
        raw[spec["allocated_annotation"]] = str(text)
        for i, devices in enumerate(containers):
            while len(merged) <= i:
                merged.append([])
            merged[i].extend(devices)
    if not raw:
        return None
    spec_obj = member(pod, "spec")
    inits = spec_obj.get("initContainers")
    init_count = len(inits) if isinstance(inits, list) else 0
    bound = bool(spec_obj.get("nodeName"))
    mig = ann.get(MIG_ALLOCATIONS)
    return PodPlacement(
        uid, str(ns or "default"), name, str(node), merged, init_count,
        _init_done(pod, init_count), bound, raw, str(mig) if mig else None,
    )  # fmt: skip


def being_allocated(pod: Json) -> tuple[str | None, bool]:
    """The node a pod is bound to, and whether its devices are being allocated there now
    (``bind-phase=allocating``, not being deleted): the plugin's Allocate is for it."""
    node = member(pod, "spec").get("nodeName")
    node = node if isinstance(node, str) and node else None
    allocating = _annotations(pod).get(BIND_PHASE) == PHASE_ALLOCATING and not member(
        pod, "metadata"
    ).get("deletionTimestamp")
    return node, bool(allocating and node)


def upsert(cluster: core.Cluster, placement: PodPlacement, now: float | None = None) -> None:
    """Put a placement into the core: bound pods hold their devices for good, unbound ones as a
    reservation that the TTL can release."""
    cluster.upsert_pod(
        placement.uid, placement.namespace, placement.name, placement.node,
        placement.devices, placement.init_count, placement.init_done,
        None if placement.bound else (now if now is not None else time.time()),
        placement.mig,
    )  # fmt: skip
