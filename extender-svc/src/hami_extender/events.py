"""Kubernetes Events on pods (``FilteringFailed``, ``BindingFailed``...), written off the
scheduler's critical path: `emit` queues, a bounded number of tasks write, and when the API is
slow the oldest unsent events are dropped (counted) rather than the filter waiting.

A pending pod is filtered again on every cluster change (each node lock taken or released is
one), so the same event repeats: as client-go's correlator does, a repeat of an event written in
the last ten minutes (same pod, type, reason and message) patches that event's ``count`` and
``lastTimestamp`` instead of creating another object.

An Event is created only for a pod that exists with the UID it names: a filter or bind of a pod
deleted meanwhile (kube-scheduler's queue lags the API in a burst), or of one that never
existed, would otherwise leave Events nobody can see the pod of. The check happens in the
writer, off the scheduler's path: no read for a pod the caller knows to exist (``exists``: just
bound) or that the pod watch shows (``known``), else one GET before the create. A repeat only
bumps the count of an Event already written, so it needs no check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hami_common.k8s import (
    EVENTS,
    LOOP_BACKOFF,
    PODS,
    ApiError,
    Backoff,
    Forbidden,
    KubeClient,
    NotFound,
    Retrier,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
)

log = logging.getLogger(__name__)
DEDUP_SECONDS = 600.0
DEDUP_KEYS = 4096


class _Written:
    """An event already in the API: its name, and how many times it happened."""

    __slots__ = ("at", "count", "name")

    def __init__(self, name: str, at: float) -> None:
        self.name, self.count, self.at = name, 1, at


class EventSink:
    def __init__(
        self, client: KubeClient | None, component: str, limit: int = 1000,
        known: Callable[[str], bool] | None = None,
    ) -> None:  # fmt: skip
        self.client = client
        self.component = component
        self.instance = f"{component}-{os.uname().nodename}"
        self.queue: asyncio.Queue[tuple[dict[str, Any], bool]] = asyncio.Queue(limit)
        self.known = known  # uid -> whether the pod watch shows that pod
        self.dropped = 0
        self.sent = 0
        self.merged = 0  # repeats folded into an earlier event's count
        self.orphans = 0  # not written: the pod does not exist (or has another UID)
        self._written: OrderedDict[tuple[str, ...], _Written] = OrderedDict()

    def emit(
        self, namespace: str, name: str, uid: str, reason: str, message: str, *, warning: bool,
        exists: bool = False,
    ) -> None:  # fmt: skip
        """Queue an Event on a pod; ``exists``: the caller just saw that pod with that UID."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name,
                "uid": uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }  # fmt: skip
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait((event, exists))

    async def run(self, workers: int = 4, retry_backoff: Backoff = LOOP_BACKOFF) -> None:
        """Write queued events; while the API refuses or is down, each failed write is one
        log line and the writer waits a backoff (growing to its cap) before the next event."""
        retry = Retrier("event write", log, retry_backoff)  # shared: one streak for all workers

        async def worker() -> None:
            while True:
                event, exists = await self.queue.get()
                if self.client is None:
                    continue
                try:
                    await self._write(self.client, event, exists)
                except (
                    TransportError,
                    ServerError,
                    TooManyRequests,
                    Unauthorized,
                    Forbidden,
                ) as exc:
                    await asyncio.sleep(retry.failed(exc))  # the API server, not this event
                except ApiError as exc:
                    log.debug("event not written: %s", exc)
                else:
                    retry.succeeded()

        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())

    async def _pod_exists(self, client: KubeClient, obj: dict[str, Any]) -> bool:
        """Whether the pod the event is about exists with that UID (one GET unless the pod
        watch shows it). Raises `ApiError` when the API cannot tell."""
        if self.known is not None and self.known(obj["uid"]):
            return True
        try:
            pod = await client.get(PODS, obj["name"], namespace=obj["namespace"])
        except NotFound:
            return False
        return bool((pod.get("metadata") or {}).get("uid") == obj["uid"])

    async def _write(self, client: KubeClient, event: dict[str, Any], exists: bool) -> None:
        obj = event["involvedObject"]
        key = (obj["namespace"], obj["name"], obj["uid"], event["type"], event["reason"],
               event["message"])  # fmt: skip
        now = time.monotonic()
        seen = self._written.get(key)
        if seen is not None and now - seen.at < DEDUP_SECONDS:
            seen.count += 1
            patch = {"count": seen.count, "lastTimestamp": event["lastTimestamp"]}
            try:
                await client.patch(EVENTS, seen.name, patch, namespace=obj["namespace"])
                self.merged += 1
                return
            except ApiError:  # gone (events expire): write a new one
                self._written.pop(key, None)
        if not exists and not await self._pod_exists(client, obj):
            self.orphans += 1
            log.debug("no event for pod %s/%s (uid %s): it does not exist", obj["namespace"],
                      obj["name"], obj["uid"])  # fmt: skip
            return
        created = await client.create(EVENTS, event, namespace=obj["namespace"])
        self.sent += 1
        name = (created.get("metadata") or {}).get("name")
        if isinstance(name, str):
            self._written[key] = _Written(name, now)
            self._written.move_to_end(key)
            while len(self._written) > DEDUP_KEYS:
                self._written.popitem(last=False)
