"""The node allocation lock: HAMi's annotation key and value, made safe.

HAMi serialises allocations on a node with the node annotation ``hami.io/mutex.lock`` =
``<RFC3339 time>,<namespace>,<pod>``: the extender takes it at bind, the device plugin releases
it after ``Allocate``. HAMi's version leaks it when an allocation fails (#2214), hands an expired
lock to a second pod while the first still waits, so two pods swap limits (#3096), and releases a
lock whose owner merely has a matching suffix (#1433). Here:

- every change is a compare-and-swap: a merge patch carrying the node's ``resourceVersion``,
  retried from a fresh read on ``Conflict``;
- ownership is an exact match of namespace and name;
- a lock never expires while its holder is alive, not finished, and reserved on or bound to this
  node; it is stale (and may be taken over) once the holder is gone, finished, marked
  ``bind-phase`` success/failed, or placed elsewhere. Only the legacy value with no owner falls
  back to HAMi's 5-minute expiry.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hami_common.k8s import NODES, PODS, Conflict, KubeClient, NotFound
from hami_common.protocol.annotations import (
    BIND_PHASE,
    NODE_LOCK,
    PHASE_FAILED,
    PHASE_SUCCESS,
    VGPU_NODE,
)
from hami_common.protocol.nodeannotation import (
    CAS_ATTEMPTS,
    format_time,
    parse_time,
    read,
    remove,
    swap,
)

LEGACY_EXPIRY = timedelta(minutes=5)

Json = dict[str, Any]


class NodeLockContention(Exception):  # noqa: N818 (the protocol's own word)
    """Another live pod holds the node's allocation lock."""

    def __init__(self, node: str, holder: str) -> None:
        super().__init__(
            f"node {node} is locked by pod {holder}, whose devices are still being allocated; "
            "the pod will be retried"
        )
        self.node = node
        self.holder = holder


@dataclass(frozen=True)
class LockValue:
    """A parsed lock annotation. ``namespace`` and ``name`` are empty for the legacy value."""

    taken: datetime
    namespace: str
    name: str

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.name}" if self.name else "(legacy lock without owner)"

    def owned_by(self, namespace: str, name: str) -> bool:
        return self.namespace == namespace and self.name == name


def format_lock(now: datetime, namespace: str, name: str) -> str:
    """HAMi's value: ``2026-08-21T06:20:39Z,default,gpu-pod``."""
    return f"{format_time(now)},{namespace},{name}"


def parse_lock(value: str) -> LockValue | None:
    """Parses a lock value; ``None`` when it is not one (a garbage value is treated as stale)."""
    parts = value.split(",")
    if len(parts) not in (1, 3):
        return None
    taken = parse_time(parts[0])
    if taken is None:
        return None
    if taken.tzinfo is None:
        taken = taken.replace(tzinfo=UTC)
    if len(parts) == 1:
        return LockValue(taken, "", "")
    namespace, name = parts[1].strip(), parts[2].strip()
    if not namespace or not name:
        return None
    return LockValue(taken, namespace, name)


class Holder(enum.Enum):
    """What the current lock means for a pod that wants it."""

    FREE = "free"
    MINE = "mine"
    STALE = "stale"
    LIVE = "live"


def holder_state(
    lock: LockValue | None, holder_pod: Json | None, node: str, now: datetime
) -> Holder:
    """Decides, from the lock and its holder pod (``None`` when it does not exist), whether the
    lock is live. Pure, so each of HAMi's failure modes is a unit test."""
    if lock is None:
        return Holder.STALE
    if not lock.name:
        return Holder.STALE if now - lock.taken > LEGACY_EXPIRY else Holder.LIVE
    if holder_pod is None:
        return Holder.STALE
    meta = holder_pod.get("metadata") or {}
    if meta.get("namespace") != lock.namespace or meta.get("name") != lock.name:
        return Holder.STALE
    if meta.get("deletionTimestamp"):
        return Holder.STALE
    status = holder_pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return Holder.STALE
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    if annotations.get(BIND_PHASE) in (PHASE_SUCCESS, PHASE_FAILED):
        return Holder.STALE
    bound_to = (holder_pod.get("spec") or {}).get("nodeName")
    reserved_on = annotations.get(VGPU_NODE)
    if (bound_to or reserved_on) != node:
        return Holder.STALE
    return Holder.LIVE


def current_lock(node_obj: Json) -> tuple[str | None, str]:
    """The lock annotation's raw value (``None`` when unset) and the node's resourceVersion."""
    return read(node_obj, NODE_LOCK)


async def _holder_pod(client: KubeClient, lock: LockValue | None) -> Json | None:
    if lock is None or not lock.name:
        return None
    try:
        return await client.get(PODS, lock.name, namespace=lock.namespace)
    except NotFound:
        return None


async def acquire(
    client: KubeClient, node: str, namespace: str, name: str, *, now: datetime | None = None,
    known: Json | None = None,
) -> Json:  # fmt: skip
    """Takes the node's lock for pod ``namespace/name``. Re-entrant for the same pod; takes over a
    stale lock; raises `NodeLockContention` while a live holder has it. ``known``: a recent read
    of the node (a watch's copy); when it shows no lock, the first compare-and-swap uses it
    instead of a GET (a stale copy only costs a Conflict and a re-read); a lock it shows is
    judged on a fresh read. Returns the node (its metadata at least) holding the lock, as the
    API server answered: a caller keeping a watched copy can update it before the watch does."""
    for attempt in range(CAS_ATTEMPTS):
        if attempt == 0 and known is not None:
            node_obj = known
        else:
            node_obj = await client.get(NODES, node, metadata_only=True)
        value, rv = current_lock(node_obj)
        if value is not None:
            if node_obj is known:
                continue
            lock = parse_lock(value)
            if lock is not None and lock.owned_by(namespace, name):
                return node_obj
            when = now or datetime.now(UTC)
            state = holder_state(lock, await _holder_pod(client, lock), node, when)
            if state is Holder.LIVE:
                raise NodeLockContention(node, lock.owner if lock else value)
        try:
            return await swap(
                client, node, NODE_LOCK, rv, format_lock(now or datetime.now(UTC), namespace, name)
            )
        except Conflict:
            continue
    raise NodeLockContention(node, "(the node changed on every attempt)")


async def release(
    client: KubeClient, node: str, namespace: str, name: str, *, known: Json | None = None
) -> bool:
    """Releases the lock if pod ``namespace/name`` (exactly) holds it. Returns whether it did;
    a lock held by anyone else is left alone. ``known``: a recent read of the node, used for the
    first compare-and-swap instead of a GET (a stale one only costs a Conflict and a re-read)."""
    return await remove(client, node, NODE_LOCK, lambda v: _owned(v, namespace, name), known=known)


def _owned(value: str, namespace: str, name: str) -> bool:
    lock = parse_lock(value)
    return lock is not None and lock.owned_by(namespace, name)


async def holder(client: KubeClient, node: str) -> LockValue | None:
    """The lock currently on the node, parsed (``None`` when unset or unparsable)."""
    value, _ = current_lock(await client.get(NODES, node, metadata_only=True))
    return parse_lock(value) if value is not None else None
