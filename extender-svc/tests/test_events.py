"""Events: a repeat (same pod, type, reason, message) within ten minutes bumps the count of the
event already written, as client-go's correlator does, instead of creating another object; and
an Event is only created for a pod that exists with the UID it names."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import httpx
import pytest
from hami_common.k8s import Backoff
from hami_common.k8s.testing import FakeApiServer
from hami_extender.events import EventSink

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


def _events(api: FakeApiServer) -> list[dict[str, object]]:
    return [o for path, o in api.objects.items() if "/events/" in path]


def test_repeats_patch_the_count_and_new_messages_make_new_events() -> None:
    api = FakeApiServer()
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


def test_a_refusing_api_server_is_one_line_per_failed_write_and_the_writer_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = FakeApiServer()
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
        # the first call of a write reads the pod (Events only for pods that exist)
        "event write failed (1 in a row): GET https://fake.invalid/api/v1/namespaces/ns/pods/p: "
        "HTTP 401 Unauthorized: nope; the API server refused our credentials"
    )
    assert sink.sent == 0


def test_no_event_for_a_pod_that_is_gone_or_was_replaced() -> None:
    """kube-scheduler filters pods deleted meanwhile in a burst (490 orphan Events once): each
    Event waits for a read that shows the pod, with that UID."""
    api = FakeApiServer()
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
    api = FakeApiServer()  # neither pod is in the API: the sink takes the callers' word
    sink = EventSink(api.client(), "hami-scheduler", known={"uid-w"}.__contains__)
    _emit_all(sink, [
        lambda: sink.emit("ns", "watched", "uid-w", "FilteringFailed", "m", warning=True),
        lambda: sink.emit("ns", "bound", "uid-b", "BindingSucceed", "m", warning=False,
                          exists=True),
    ])  # fmt: skip
    assert sink.sent == 2
    assert [m for m, u in api.requests] == ["POST", "POST"]
