"""The node Warning Event HAMi emits for asymmetric GPU P2P link data
(``AsymmetricGPUP2PLink``, namespace ``default``, at most once an hour per node)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from hami_common.k8s import EVENTS, ApiError, KubeClient

log = logging.getLogger(__name__)

REASON = "AsymmetricGPUP2PLink"
DEDUP_SECONDS = 3600.0


class AsymmetricLinkReporter:
    def __init__(self, client: KubeClient, node: str, component: str = "hami-device-plugin"):
        self.client = client
        self.node = node
        self.component = component
        self._last: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, pairs: list[tuple[str, str]]) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < DEDUP_SECONDS:
            return
        self._last = now
        message = "asymmetric P2P link data (pair scored 0): " + ", ".join(
            f"{a}<->{b}" for a, b in pairs
        )
        log.warning("node %s: %s", self.node, message)
        task = asyncio.get_running_loop().create_task(self._emit(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{self.node}.", "namespace": "default"},
            "involvedObject": {"kind": "Node", "apiVersion": "v1", "name": self.node},
            "reason": REASON,
            "message": message,
            "type": "Warning",
            "source": {"component": self.component, "host": self.node},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.client.create(EVENTS, event, namespace="default")
        except ApiError as exc:
            log.warning("node %s: could not record %s: %s", self.node, REASON, exc)
