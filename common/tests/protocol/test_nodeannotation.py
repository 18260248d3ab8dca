"""The pieces every node-annotation lock shares: the time written and read back, the
annotation read with the node's resourceVersion, and its removal by its owner."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from hami_common.k8s import NODES
from hami_common.k8s.testing import FakeApiServer
from hami_common.protocol.nodeannotation import format_time, parse_time, read, remove

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def test_the_time_is_go_rfc3339_in_utc_and_reads_back() -> None:
    beijing = NOW.astimezone(timezone(timedelta(hours=8)))
    assert format_time(beijing) == "2026-08-20T10:00:00Z"
    assert parse_time(format_time(beijing)) == NOW
    assert parse_time(" 2026-08-20T18:00:00+08:00 ") == NOW
    naive = parse_time("2026-08-20T10:00:00")
    assert naive is not None
    assert naive.tzinfo is None  # each protocol decides what a zone-less time means
    assert parse_time("yesterday") is None


def test_read_gives_the_value_and_the_resource_version() -> None:
    node = {"metadata": {"resourceVersion": "42", "annotations": {"k": "v", "n": 7}}}
    assert read(node, "k") == ("v", "42")
    assert read(node, "other") == (None, "42")
    assert read(node, "n") == (None, "42")  # not a string: not a lock value
    assert read({}, "k") == (None, "")


def test_remove_deletes_only_an_owned_value_deciding_on_a_fresh_read() -> None:
    async def main() -> None:
        api = FakeApiServer()
        api.add(NODES, {"metadata": {"name": "n1", "annotations": {"lock": "mine"}}})
        async with api.client() as client:
            stale = {"metadata": {"name": "n1", "resourceVersion": "1", "annotations": {}}}
            assert not await remove(client, "n1", "lock", lambda v: v == "theirs", known=stale)
            assert api.obj(NODES, "n1")["metadata"]["annotations"] == {"lock": "mine"}
            # the caller's copy shows no lock: the fresh read does, and it goes
            assert await remove(client, "n1", "lock", lambda v: v == "mine", known=stale)
            assert "lock" not in api.obj(NODES, "n1")["metadata"].get("annotations", {})
            assert not await remove(client, "n1", "lock")
            assert not await remove(client, "gone", "lock")

    asyncio.run(main())
