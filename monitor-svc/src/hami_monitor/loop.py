"""The monitor's periodic pass: read every container's region, measure each container's GPU
utilisation over the period, run the priority feedback loop, reap the folders of pods that left.

Utilisation comes from the hook's limiter: ``busy_ns`` is the GPU time its events measured for
the container's launches, so the ratio over a period is what the container used of the device
(HAMi sums per-process SM utilisation that HAMi-core samples from NVML). Launches the limiter
does not measure (no SM limit, or policy ``disable``) are not counted.

What a scrape reads (`utilization`, `held`) is replaced whole at the end of a pass, never
changed in place, so a scrape in another thread sees one pass or the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from hami_common.shm import RegionError, set_recent_kernel, set_utilization_switch

from hami_monitor.containers import OK, Container, Scanner, container_folders, reap
from hami_monitor.feedback import Seen, decide
from hami_monitor.pods import PodIndex

log = logging.getLogger(__name__)


class MonitorLoop:
    def __init__(
        self,
        scanner: Scanner,
        pods: PodIndex,
        *,
        feedback: bool,
        interval: float,
        reap_after: float,
        limits_dir: Path | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scanner, self.pods = scanner, pods
        self.feedback, self.interval = feedback, interval
        self.reap_after, self.limits_dir = reap_after, limits_dir
        self.clock = clock
        self.utilization: dict[Path, tuple[float, ...]] = {}
        """Region -> percent of each device's time the container kept it busy, last period."""
        self.held: frozenset[Path] = frozenset()
        """Regions whose launches the loop holds for a higher-priority container."""
        self.passes = 0
        self._busy: dict[Path, tuple[float, tuple[int, ...]]] = {}

    def tick(self) -> list[Container]:
        containers = self.scanner.scan()
        now = self.clock()
        self._measure(containers, now)
        if self.feedback:
            self._feedback(containers)
        if self.pods.synced.is_set() and self.reap_after >= 0:
            folders = container_folders(self.scanner.root)
            reap(folders, self.pods.pods, older_than=self.reap_after, now=time.time(),
                 limits_dir=self.limits_dir)  # fmt: skip
        self.passes += 1
        return containers

    def _measure(self, containers: list[Container], now: float) -> None:
        busy: dict[Path, tuple[float, tuple[int, ...]]] = {}
        ratios: dict[Path, tuple[float, ...]] = {}
        for c in containers:
            if c.snapshot is None or c.region is None:
                continue
            counters = tuple(d.busy_ns for d in c.snapshot.devices)
            busy[c.region] = (now, counters)
            before = self._busy.get(c.region)
            if before is None or now <= before[0]:
                continue
            span = (now - before[0]) * 1e9
            ratios[c.region] = tuple(
                min(100.0, max(0.0, (b - a) * 100.0 / span))
                for a, b in zip(before[1], counters, strict=True)
            )
        self._busy, self.utilization = busy, ratios

    def _feedback(self, containers: list[Container]) -> None:
        pods = self.pods.pods
        seen, paths = [], {}
        for c in containers:
            info = pods.get(c.pod_uid)
            devices = info.devices.get(c.name, ()) if info is not None else ()
            if c.state != OK or c.snapshot is None or c.region is None or not devices:
                continue
            s = c.snapshot
            key = str(c.region)
            paths[key] = c.region
            seen.append(Seen(key, s.priority, s.recent_kernel, s.utilization_switch, devices))
        held = set()
        for d in decide(seen):
            path = paths[d.key]
            if d.held:
                held.add(path)
            try:
                if d.recent_kernel is not None:
                    set_recent_kernel(path, d.recent_kernel)
                if d.util_switch is not None:
                    set_utilization_switch(path, bool(d.util_switch))
            except (OSError, RegionError) as exc:  # gone or replaced meanwhile
                log.debug("feedback write to %s skipped: %s", path, exc)
        self.held = frozenset(held)

    async def run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # one bad pass (a bug) must not stop the monitor
                log.exception("monitor pass failed")
            await asyncio.sleep(self.interval)
