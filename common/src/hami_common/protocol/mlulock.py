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

from hami_common.k8s import NODES, Conflict, KubeClient
from hami_common.protocol.nodeannotation import (
    CAS_ATTEMPTS,
    format_time,
    parse_time,
    read,
    remove,
    swap,
)

MLU_LOCK = "cambricon.com/dsmlu.lock"
EXPIRY = timedelta(minutes=2)

Json = dict[str, Any]


class MluLockContention(Exception):  # noqa: N818 (the protocol's own word)
    """The node's Cambricon lock was taken less than 2 minutes ago."""

    def __init__(self, node: str, taken: str) -> None:
        super().__init__(
            f"node {node} has been locked within 2 minutes (cambricon.com/dsmlu.lock={taken}): "
            "an MLU pod is being allocated there; the pod will be retried"
        )
        self.node = node


format_lock = format_time


def parse_lock(value: str) -> datetime | None:
    """The lock's time (UTC when it names no zone), or ``None`` for a value that is not one
    (treated as expired)."""
    taken = parse_time(value)
    return taken if taken is None or taken.tzinfo is not None else taken.replace(tzinfo=UTC)


async def acquire(client: KubeClient, node: str, *, now: datetime | None = None) -> str:
    """Takes the node's Cambricon lock; returns the value written. Raises `MluLockContention`
    while a lock younger than 2 minutes is on the node."""
    for _ in range(CAS_ATTEMPTS):
        when = now or datetime.now(UTC)
        value, rv = read(await client.get(NODES, node, metadata_only=True), MLU_LOCK)
        if value is not None:
            taken = parse_lock(value)
            if taken is not None and when - taken <= EXPIRY:
                raise MluLockContention(node, value)
        written = format_lock(when)
        try:
            await swap(client, node, MLU_LOCK, rv, written)
            return written
        except Conflict:
            continue
    raise MluLockContention(node, "(the node changed on every attempt)")


async def release(client: KubeClient, node: str, value: str | None = None) -> bool:
    """Removes the node's Cambricon lock; returns whether it did. With ``value`` (what
    `acquire` wrote), only that lock: a bind that failed never drops a lock taken after it."""
    return await remove(client, node, MLU_LOCK, lambda v: value is None or v == value)
