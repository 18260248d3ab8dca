"""Waiting for the cluster to reach a state: the probe is called until it returns a truthy
value (returned), or the time is up (an `AssertionError` naming what was awaited)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = 60.0, *, every: float = 0.2,
    what: str = "condition",
) -> T:  # fmt: skip
    """The first truthy value of ``await probe()``, polled every ``every`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {within:.0f} s")
        await asyncio.sleep(every)
