"""Events: a repeat (same pod, type, reason, message) within ten minutes bumps the count of the
event already written, as client-go's correlator does, instead of creating another object."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import httpx
import pytest
from hami_common.k8s import Backoff
from hami_extender.events import EventSink
from hami_extender.testing import FakeApi


def test_repeats_patch_the_count_and_new_messages_make_new_events() -> None:
    api = FakeApi()
    sink = EventSink(api.client(), "hami-scheduler")

    async def go() -> None:
        runner = asyncio.create_task(sink.run(workers=1))
        for message in ("no available node", "no available node", "no available node", "other"):
            sink.emit("ns", "p", "uid-p", "FilteringFailed", message, warning=True)
            await asyncio.sleep(0.05)  # one after the other, as retries come
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    asyncio.run(go())
    events = [o for path, o in api.objects.items() if "/events/" in path]
    by_message = {e["message"]: e for e in events}
    assert len(events) == 2
    assert by_message["no available node"]["count"] == 3
    assert by_message["other"]["count"] == 1
    assert (sink.sent, sink.merged) == (2, 2)
    assert [m for m, u in api.requests if "/events" in u] == ["POST", "PATCH", "PATCH", "POST"]


def test_a_refusing_api_server_is_one_line_per_failed_write_and_the_writer_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = FakeApi()
    api.intercept = lambda _: httpx.Response(
        401, json={"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "nope"}
    )
    sink = EventSink(api.client(), "hami-scheduler")

    async def go() -> None:
        backoff = Backoff(base=0.3, cap=5, rng=random.Random(1))  # noqa: S311 - not crypto
        runner = asyncio.create_task(sink.run(workers=2, retry_backoff=backoff))
        for i in range(6):
            sink.emit("ns", "p", "uid-p", "FilteringFailed", f"message {i}", warning=True)
        await asyncio.sleep(0.2)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    with caplog.at_level(logging.DEBUG, logger="hami_extender.events"):
        asyncio.run(go())
    lines = [r.getMessage() for r in caplog.records if r.name == "hami_extender.events"]
    # Two workers, each waiting after its failure: not six writes in a row against the server.
    assert 2 <= len(api.requests) < 6
    assert len(lines) == len(api.requests)
    assert lines[0].startswith(
        "event write failed (1 in a row): POST https://fake.invalid/api/v1/namespaces/ns/events: "
        "HTTP 401 Unauthorized: nope; the API server refused our credentials"
    )
    assert sink.sent == 0
