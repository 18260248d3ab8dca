"""Background tasks a service or plugin runs beside its main loop, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any


async def cancel_all(tasks: Sequence[asyncio.Task[Any]], *, ignore_errors: bool = False) -> None:
    """Cancels every task, then waits for each in turn to end. A task's own failure is raised
    (the first one, once every task has been asked to stop), or, with ``ignore_errors``, not: at
    a server's shutdown its background tasks have logged their failures already."""
    for task in tasks:
        task.cancel()
    ignored: tuple[type[BaseException], ...] = (
        (asyncio.CancelledError, Exception) if ignore_errors else (asyncio.CancelledError,)
    )
    for task in tasks:
        with contextlib.suppress(*ignored):
            await task
