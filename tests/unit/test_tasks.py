"""The shared asyncio helpers: cancel_and_wait ends a task even when it swallowed a cancellation (as 3.11's
wait_for can), and backoff spreads retries out."""

from __future__ import annotations

import asyncio
import contextlib
import random

from appliance.aio import Backoff, cancel_and_wait


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


def test_backoff_waits_are_fully_jittered_under_a_doubling_cap_and_reset_starts_over() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(7))
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    waits = [backoff.next() for _ in caps]
    assert all(0.0 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))
    assert len({round(w, 6) for w in waits}) == len(waits)  # spread, not one fixed schedule every box shares
    backoff.reset()
    assert backoff.next() <= 0.5


def test_many_boxes_retrying_together_spread_out_over_the_window() -> None:
    first_waits = [Backoff(8.0, 30.0, random.Random(seed)).next() for seed in range(1000)]
    in_each_second = [sum(1 for w in first_waits if s <= w < s + 1) for s in range(8)]
    assert max(in_each_second) < 200  # about 125 each: no stampede in any one second
