"""cancel_and_wait ends a task even when it swallowed a cancellation (as 3.11's wait_for can)."""

from __future__ import annotations

import asyncio
import contextlib

from appliance.aio import cancel_and_wait


async def test_a_task_that_swallows_the_first_cancel_still_ends() -> None:
    forever = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)  # the first cancellation is lost here
        await forever.wait()  # and then it would wait for good

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], timeout=2.0) == set()
    assert task.cancelled()


async def test_a_task_that_never_ends_is_returned_at_the_deadline() -> None:
    done = False

    async def immortal() -> None:
        while not done:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    task = asyncio.create_task(immortal())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], timeout=0.3) == {task}
    done = True
    task.cancel()
    await asyncio.wait([task], timeout=1.0)
    assert task.done()
