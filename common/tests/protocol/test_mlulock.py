"""Cambricon's node lock: HAMi's key and value (a bare time, 2-minute expiry, not re-entrant),
taken and removed by compare-and-swap against a node behind a mock transport."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hami_common.k8s import ClusterConfig, KubeClient
from hami_common.protocol.mlulock import (
    MLU_LOCK,
    MluLockContention,
    acquire,
    format_lock,
    parse_lock,
    release,
)

NOW = datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)


class _Node:
    """One node: GET, and merge patches with a resourceVersion precondition (409 when stale)."""

    def __init__(self, lock: str | None = None, *, race: bool = False) -> None:
        self.rv, self.lock, self.race = 7, lock, race
        self.calls: list[str] = []

    def node(self) -> dict[str, Any]:
        ann = {MLU_LOCK: self.lock} if self.lock else {}
        return {"metadata": {"name": "n1", "resourceVersion": str(self.rv), "annotations": ann}}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.method)
        if request.method == "GET":
            return httpx.Response(200, json=self.node())
        if self.race:  # another bind wrote the lock between our read and our write
            self.race, self.rv, self.lock = False, self.rv + 1, format_lock(NOW)
        body = orjson.loads(request.content)["metadata"]
        if body["resourceVersion"] != str(self.rv):
            return httpx.Response(409, json={"kind": "Status", "code": 409, "reason": "Conflict"})
        self.rv += 1
        self.lock = body["annotations"][MLU_LOCK]
        return httpx.Response(200, json=self.node())

    def client(self) -> KubeClient:
        return KubeClient(ClusterConfig(server="https://fake.invalid"),
                          transport=httpx.MockTransport(self.handle))  # fmt: skip


async def _acquire(node: _Node, now: datetime = NOW) -> str:
    async with node.client() as client:
        return await acquire(client, "n1", now=now)


async def _release(node: _Node, value: str | None = None) -> bool:
    async with node.client() as client:
        return await release(client, "n1", value)


def test_value_is_a_bare_rfc3339_time() -> None:
    assert format_lock(NOW) == "2026-08-21T06:20:39Z"
    assert parse_lock("2026-08-21T06:20:39Z") == NOW
    assert parse_lock("garbage") is None


def test_a_free_node_is_locked_and_a_young_lock_refuses_everyone() -> None:
    node = _Node()
    assert asyncio.run(_acquire(node)) == "2026-08-21T06:20:39Z"
    assert node.lock == "2026-08-21T06:20:39Z"
    with pytest.raises(MluLockContention, match="has been locked within 2 minutes"):
        asyncio.run(_acquire(node, NOW + timedelta(seconds=119)))


def test_an_expired_or_garbage_lock_is_taken_over() -> None:
    old = _Node(format_lock(NOW - timedelta(minutes=3)))
    asyncio.run(_acquire(old))
    assert old.lock == format_lock(NOW)
    garbage = _Node("not a time")
    asyncio.run(_acquire(garbage))
    assert garbage.lock == format_lock(NOW)


def test_two_binds_never_both_take_it() -> None:
    # HAMi's blind merge patch lets the second writer win silently; the compare-and-swap makes
    # the loser read the winner's lock and back off.
    node = _Node(race=True)
    with pytest.raises(MluLockContention):
        asyncio.run(_acquire(node))
    assert node.calls == ["GET", "PATCH", "GET"]


def test_release_removes_it_and_a_failed_bind_spares_a_newer_lock() -> None:
    node = _Node(format_lock(NOW))
    assert not asyncio.run(_release(node, "2026-08-21T06:00:00Z"))
    assert node.lock == format_lock(NOW)
    assert asyncio.run(_release(node, format_lock(NOW)))
    assert node.lock is None
    assert not asyncio.run(_release(node))
    plugin = _Node(format_lock(NOW))
    assert asyncio.run(_release(plugin))  # the plugin removes whatever lock is there
