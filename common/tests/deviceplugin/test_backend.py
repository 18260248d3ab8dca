"""follow_health: each change reaches the consumer, a change that moved a device is logged,
and a watcher that fails is restarted (a broken vendor library call does not end health
watching)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest
from hami_common.deviceplugin.backend import HealthChange, PhysicalDevice, follow_health
from hami_common.deviceplugin.testing import FakeBackend, device_spec


class FlakyBackend(FakeBackend):
    """The first watcher fails; the second reports one change, then one that changes nothing,
    then ends."""

    def __init__(self) -> None:
        super().__init__(spec=device_spec(2))
        self.watchers = 0

    async def health_events(  # type: ignore[override]
        self, devices: Sequence[PhysicalDevice]
    ) -> AsyncIterator[HealthChange]:
        self.watchers += 1
        if self.watchers == 1:
            raise RuntimeError("driver call failed")
        yield HealthChange(devices[1].uuid, False, "XID 79")
        yield HealthChange(devices[0].uuid, True, "")


def test_changes_reach_the_consumer_and_a_failed_watcher_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = FlakyBackend()
    devices = backend.discover()
    seen: list[tuple[str, bool]] = []

    async def apply(change: HealthChange) -> bool:
        seen.append((change.uuid, change.healthy))
        return not change.healthy  # only the first change moves a device

    log = logging.getLogger("test.health")
    with caplog.at_level(logging.WARNING, logger="test.health"):
        asyncio.run(follow_health(backend, lambda: devices, apply, asyncio.Event(),
                                  restart_delay=0.0, log=log))  # fmt: skip
    assert backend.watchers == 2
    assert seen == [(devices[1].uuid, False), (devices[0].uuid, True)]
    assert "health watcher failed; restarting it" in caplog.text
    assert f"device {devices[1].uuid} is unhealthy: XID 79" in caplog.text
    assert f"device {devices[0].uuid} is healthy" not in caplog.text


def test_a_set_stop_watches_nothing() -> None:
    backend = FlakyBackend()
    stop = asyncio.Event()
    stop.set()

    async def apply(change: HealthChange) -> bool:
        raise AssertionError("no watcher runs once stopped")

    asyncio.run(follow_health(backend, backend.discover, apply, stop, restart_delay=0.0,
                              log=logging.getLogger("test.health")))  # fmt: skip
    assert backend.watchers == 0
