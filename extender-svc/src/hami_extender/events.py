"""Kubernetes Events on pods (``FilteringFailed``, ``BindingFailed``...), written off the
scheduler's critical path: `emit` queues, a bounded number of tasks write, and when the API is
slow the oldest unsent events are dropped (counted) rather than the filter waiting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import UTC, datetime
from typing import Any

from hami_common.k8s import EVENTS, ApiError, KubeClient

log = logging.getLogger(__name__)


class EventSink:
    def __init__(self, client: KubeClient | None, component: str, limit: int = 1000) -> None:
        self.client = client
        self.component = component
        self.instance = f"{component}-{os.uname().nodename}"
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(limit)
        self.dropped = 0
        self.sent = 0

    def emit(
        self, namespace: str, name: str, uid: str, reason: str, message: str, *, warning: bool
    ) -> None:
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
        self.queue.put_nowait(event)

    async def run(self, workers: int = 4) -> None:
        async def worker() -> None:
            while True:
                event = await self.queue.get()
                if self.client is None:
                    continue
                try:
                    await self.client.create(
                        EVENTS, event, namespace=event["metadata"]["namespace"]
                    )
                    self.sent += 1
                except ApiError as exc:
                    log.debug("event not written: %s", exc)

        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
