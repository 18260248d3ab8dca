"""HAMi's priority feedback loop (node-side reference §2.5), as a pure decision over the
containers' regions, then the writes.

Each period, for every container with devices known from its pod:

1. activity: the hook sets ``recent_kernel = 2`` on every launch of a container with an SM
   limit; the loop decrements it, and a container still above 0 counts as active at its
   ``priority`` (0 high, larger is lower) on each of its devices;
2. hold: a container sharing a device with an active container of a higher priority gets
   ``recent_kernel = -1``, and the hook holds its launches until the loop sets it back to 0 (the
   period after the higher-priority one went quiet);
3. SM limit switch: ``util_switch = 1`` (the hook enforces the SM limit under policy
   ``default``) when a higher-priority container is active on one of its devices or another
   active container shares its priority there; else 0, so a container alone on its device runs
   unthrottled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Seen:
    """What the loop reads of one container."""

    key: str
    priority: int
    recent_kernel: int
    util_switch: int
    devices: tuple[str, ...]  # physical device UUIDs


@dataclass(frozen=True)
class Decision:
    """What the loop writes back (None: leave the field as it is)."""

    key: str
    recent_kernel: int | None
    util_switch: int | None
    held: bool


def decide(containers: Sequence[Seen]) -> list[Decision]:
    rk: dict[str, int] = {}
    active: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for c in containers:
        value = c.recent_kernel
        if value > 0:
            value -= 1
            if value > 0 and c.priority >= 0:
                for dev in c.devices:
                    active[dev][c.priority] += 1
        rk[c.key] = value
    out = []
    for c in containers:
        value = rk[c.key]
        busy = [active[dev] for dev in c.devices if dev in active]
        higher = any(n > 0 for a in busy for q, n in a.items() if q < c.priority)
        peers = any(a.get(c.priority, 0) > 1 for a in busy)
        if higher:
            value = -1
        elif value < 0:
            value = 0
        switch = 1 if higher or peers else 0
        out.append(
            Decision(
                c.key,
                value if value != c.recent_kernel else None,
                switch if switch != c.util_switch else None,
                held=higher,
            )
        )
    return out
