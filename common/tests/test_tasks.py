"""cancel_all stops every background task and says, or not, how one failed."""

from __future__ import annotations

import asyncio

import pytest
from hami_common.tasks import cancel_all


async def _forever() -> None:
    await asyncio.Event().wait()


async def _fails_on_cancel() -> None:
    try:
        await asyncio.Event().wait()
    finally:
        raise RuntimeError("cleanup failed")


def test_every_task_is_cancelled_and_awaited() -> None:
    async def main() -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(_forever()) for _ in range(3)]
        await asyncio.sleep(0)
        await cancel_all(tasks)
        return tasks

    assert all(t.cancelled() for t in asyncio.run(main()))


def test_a_failure_is_raised_after_every_task_was_asked_to_stop_unless_ignored() -> None:
    async def main(ignore: bool) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(_fails_on_cancel()), asyncio.create_task(_forever())]
        await asyncio.sleep(0)
        try:
            await cancel_all(tasks, ignore_errors=ignore)
        finally:
            await asyncio.sleep(0)
        return tasks

    with pytest.raises(RuntimeError, match="cleanup failed"):
        asyncio.run(main(False))
    tasks = asyncio.run(main(True))
    assert all(t.done() for t in tasks)
    assert tasks[1].cancelled()
