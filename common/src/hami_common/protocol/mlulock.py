"""Cambricon's node lock, as HAMi has it (reference ``hami-vendors.md`` §2.5).

HAMi serialises MLU allocations on a node with a lock of their own, separate from (and not
exclusive with) ``hami.io/mutex.lock``: the node annotation ``cambricon.com/dsmlu.lock`` whose
value is a bare RFC3339 time, with no owner. The extender sets it at bind for a pod with MLUs;
the device plugin removes it once it has allocated the pod. A lock younger than 2 minutes refuses
everyone (it is not re-entrant: HAMi releases it when a bind fails); an older one is taken over.

The key and value are HAMi's, so Cambricon's own plugin (which removes the lock) and HAMi's
scheduler interoperate with ours; every change is a compare-and-swap on the node's
``resourceVersion`` rather than HAMi's blind merge patch retried five times, so two binds can
never both believe they took it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hami_common.k8s import NODES, Conflict, KubeClient, NotFound

MLU_LOCK = "cambricon.com/dsmlu.lock"
EXPIRY = timedelta(minutes=2)
_CAS_ATTEMPTS = 8

Json = dict[str, Any]


class MluLockContention(Exception):  # noqa: N818 (the protocol's own word)
    """The node's Cambricon lock was taken less than 2 minutes ago."""

    def __init__(self, node: str, taken: str) -> None:
        super().__init__(
            f"node {node} has been locked within 2 minutes (cambricon.com/dsmlu.lock={taken}): "
            "an MLU pod is being allocated there; the pod will be retried"
        )
        self.node = node


def format_lock(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_lock(value: str) -> datetime | None:
    """The lock's time, or ``None`` for a value that is not one (treated as expired)."""
    try:
        taken = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return taken if taken.tzinfo is not None else taken.replace(tzinfo=UTC)


def _current(node_obj: Json) -> tuple[str | None, str]:
    meta = node_obj.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(MLU_LOCK)
    return (value if isinstance(value, str) else None), str(meta.get("resourceVersion", ""))


async def _cas(client: KubeClient, node: str, resource_version: str, value: str | None) -> None:
    patch: Json = {
        "metadata": {"resourceVersion": resource_version, "annotations": {MLU_LOCK: value}}
    }
    await client.patch(NODES, node, patch, metadata_only=True)


async def acquire(client: KubeClient, node: str, *, now: datetime | None = None) -> str:
    """Takes the node's Cambricon lock; returns the value written. Raises `MluLockContention`
    while a lock younger than 2 minutes is on the node."""
    for _ in range(_CAS_ATTEMPTS):
        when = now or datetime.now(UTC)
        value, rv = _current(await client.get(NODES, node, metadata_only=True))
        if value is not None:
            taken = parse_lock(value)
            if taken is not None and when - taken <= EXPIRY:
                raise MluLockContention(node, value)
        written = format_lock(when)
        try:
            await _cas(client, node, rv, written)
            return written
        except Conflict:
            continue
    raise MluLockContention(node, "(the node changed on every attempt)")


async def release(client: KubeClient, node: str, value: str | None = None) -> bool:
    """Removes the node's Cambricon lock; returns whether it did. With ``value`` (what
    `acquire` wrote), only that lock: a bind that failed never drops a lock taken after it."""
    for _ in range(_CAS_ATTEMPTS):
        try:
            current, rv = _current(await client.get(NODES, node, metadata_only=True))
        except NotFound:
            return False
        if current is None or (value is not None and current != value):
            return False
        try:
            await _cas(client, node, rv, None)
            return True
        except Conflict:
            continue
    return False
