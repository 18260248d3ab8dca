"""A lock kept in one annotation of a node, as HAMi (``hami.io/mutex.lock``), its Cambricon
plugin (``cambricon.com/dsmlu.lock``) and volcano (``hamivgpu``) keep theirs: the time they
write (Go's ``time.RFC3339`` in UTC), the annotation read with the node's resourceVersion, and
the compare-and-swap that writes it (retried at most `CAS_ATTEMPTS` times by each protocol),
and its removal by its owner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hami_common.k8s import NODES, Conflict, KubeClient, NotFound

CAS_ATTEMPTS = 8

Json = dict[str, Any]


def format_time(now: datetime) -> str:
    """Go's ``time.RFC3339`` in UTC: ``2026-08-20T10:00:00Z``."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    """The time ``text`` writes (ISO 8601, ``Z`` for UTC); ``None`` when it is not one. A time
    without a zone is returned naive: each protocol says what it means."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def read(node_obj: Json, key: str) -> tuple[str | None, str]:
    """The annotation's value (``None`` when unset) and the node's resourceVersion."""
    meta = node_obj.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(key)
    return (value if isinstance(value, str) else None), str(meta.get("resourceVersion", ""))


async def swap(
    client: KubeClient, node: str, key: str, resource_version: str, value: str | None
) -> Json:
    """Writes ``value`` (``None``: deletes the annotation) if the node is still at
    ``resource_version`` (`Conflict` otherwise); returns the node's metadata as it left it."""
    patch: Json = {"metadata": {"resourceVersion": resource_version, "annotations": {key: value}}}
    return await client.patch(NODES, node, patch, metadata_only=True)


async def remove(
    client: KubeClient,
    node: str,
    key: str,
    owns: Callable[[str], bool] = lambda _: True,
    *,
    known: Json | None = None,
) -> bool:
    """Deletes the annotation if ``owns(value)``; returns whether it did (a node that is gone
    has nothing to delete). ``known``: a recent read of the node, used for the first
    compare-and-swap instead of a GET (a stale one only costs a Conflict and a re-read); a value
    it shows missing or not owned is decided on a fresh read, never on the caller's copy."""
    for attempt in range(CAS_ATTEMPTS):
        if attempt == 0 and known is not None:
            node_obj = known
        else:
            try:
                node_obj = await client.get(NODES, node, metadata_only=True)
            except NotFound:
                return False
        value, rv = read(node_obj, key)
        if value is None or not owns(value):
            if node_obj is known:
                continue
            return False
        try:
            await swap(client, node, key, rv, None)
            return True
        except Conflict:
            continue
    return False
