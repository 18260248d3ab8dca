"""Node registration: the vendor's annotations on the Node, kept equal to what we discovered.

Each pass reads the Node and patches only the annotations whose value differs, so an unchanged
inventory costs one GET, a health change is published at once (the pass is woken by the device
table), and an annotation someone deleted is written again on the next pass (HAMi only rewrites
it after a change or a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from hami_common.deviceplugin.devices import DeviceTable
from hami_common.k8s import NODES, ApiError, Backoff, KubeClient, Retrier

log = logging.getLogger(__name__)


class NodeRegistrar:
    def __init__(
        self,
        client: KubeClient,
        node: str,
        table: DeviceTable,
        desired: Callable[[], dict[str, str]],
        *,
        interval: float = 30.0,
        retry: float = 5.0,
    ) -> None:
        self.client = client
        self.node = node
        self.table = table
        self.desired = desired
        self.interval = interval
        self.retry = retry  # the longest wait after failed passes (they start shorter)
        self.patches = 0

    async def sync_once(self) -> bool:
        """Patches the annotations that differ; returns whether it patched."""
        node = await self.client.get(NODES, self.node, metadata_only=True)
        current = (node.get("metadata") or {}).get("annotations") or {}
        changed = {k: v for k, v in self.desired().items() if current.get(k) != v}
        if not changed:
            return False
        await self.client.patch(
            NODES, self.node, {"metadata": {"annotations": changed}}, metadata_only=True
        )
        self.patches += 1
        log.info("node %s: wrote %s", self.node, ", ".join(sorted(changed)))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every ``interval`` and at each device change; a failed pass is one log line
        and the next comes after a backoff that grows to ``retry``."""
        seen = self.table.version
        retry = Retrier(
            f"node {self.node}: registration",
            log,
            Backoff(base=min(0.5, self.retry), cap=self.retry),
        )
        while not stop.is_set():
            try:
                await self.sync_once()
                wait = self.interval
                retry.succeeded()
            except ApiError as exc:
                wait = retry.failed(exc)
            waiters = {
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.table.wait_change(seen)),
            }
            _, pending = await asyncio.wait(
                waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            seen = self.table.version
