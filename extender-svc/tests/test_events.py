"""Events: a repeat (same pod, type, reason, message) within ten minutes bumps the count of the
event already written, as client-go's correlator does, instead of creating another object."""

from __future__ import annotations

import asyncio
import contextlib

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
