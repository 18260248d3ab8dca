"""Events: a repeat (same pod, type, reason, message) within ten minutes bumps the count of the
event already written, as client-go's correlator does, instead of creating another object; and
an Event is only created for a pod that exists with the UID it names."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from hami_extender.events import EventSink
from hami_extender.testing import FakeApi

PODS = "/api/v1/namespaces/ns/pods"


def _emit_all(sink: EventSink, emits: list[Callable[[], None]]) -> None:
    async def go() -> None:
        runner = asyncio.create_task(sink.run(workers=1))
        for emit in emits:
            emit()
            await asyncio.sleep(0.05)  # one after the other, as retries come
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    asyncio.run(go())


def _events(api: FakeApi) -> list[dict[str, object]]:
    return [o for path, o in api.objects.items() if "/events/" in path]


def test_repeats_patch_the_count_and_new_messages_make_new_events() -> None:
    api = FakeApi()
    api.put(PODS, {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-p"}})
    sink = EventSink(api.client(), "hami-scheduler")
    messages = ("no available node", "no available node", "no available node", "other")
    _emit_all(sink, [
        lambda m=m: sink.emit("ns", "p", "uid-p", "FilteringFailed", m, warning=True)  # type: ignore[misc]
        for m in messages
    ])  # fmt: skip
    events = _events(api)
    by_message = {e["message"]: e for e in events}
    assert len(events) == 2
    assert by_message["no available node"]["count"] == 3
    assert by_message["other"]["count"] == 1
    assert (sink.sent, sink.merged) == (2, 2)
    assert [m for m, u in api.requests if "/events" in u] == ["POST", "PATCH", "PATCH", "POST"]


def test_no_event_for_a_pod_that_is_gone_or_was_replaced() -> None:
    """kube-scheduler filters pods deleted meanwhile in a burst (490 orphan Events once): each
    Event waits for a read that shows the pod, with that UID."""
    api = FakeApi()
    api.put(PODS, {"metadata": {"name": "new", "namespace": "ns", "uid": "uid-2"}})
    api.put(PODS, {"metadata": {"name": "here", "namespace": "ns", "uid": "uid-3"}})
    sink = EventSink(api.client(), "hami-scheduler")
    _emit_all(sink, [
        lambda: sink.emit("ns", "gone", "uid-1", "FilteringFailed", "m", warning=True),
        lambda: sink.emit("ns", "new", "uid-old", "FilteringFailed", "m", warning=True),
        lambda: sink.emit("ns", "here", "uid-3", "FilteringFailed", "m", warning=True),
    ])  # fmt: skip
    assert [e["involvedObject"]["name"] for e in _events(api)] == ["here"]  # type: ignore[index]
    assert (sink.sent, sink.orphans) == (1, 2)


def test_a_pod_the_watch_or_the_caller_knows_costs_no_read() -> None:
    api = FakeApi()  # neither pod is in the API: the sink takes the callers' word
    sink = EventSink(api.client(), "hami-scheduler", known={"uid-w"}.__contains__)
    _emit_all(sink, [
        lambda: sink.emit("ns", "watched", "uid-w", "FilteringFailed", "m", warning=True),
        lambda: sink.emit("ns", "bound", "uid-b", "BindingSucceed", "m", warning=False,
                          exists=True),
    ])  # fmt: skip
    assert sink.sent == 2
    assert [m for m, u in api.requests] == ["POST", "POST"]
