"""Racing a late provider: the first output of one stream, or of a second started once the first is late.

A cloud LLM that accepts a request and then says nothing costs a turn its whole first-token deadline
before the fallback moves on. Hedging starts the next provider as soon as the first is late (against
its own recent first-output times) and keeps whichever gives its first output first: the other is
stopped at once, so the user never hears both. Nothing here knows which stage it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()
"""A stream that ended without an item (a valid, empty answer)."""


@dataclass
class Outcome(Generic[T]):
    winner: int | None
    """0: the first stream; 1: the one started when it was late; None: neither gave an item."""
    first: T | None = None
    """The winner's first item (None: it ended empty)."""
    stream: AsyncIterator[T] | None = None
    """The winner's stream, to read on (the loser's is closed)."""
    first_after_s: float = 0.0
    """From the winner's start to its first item."""
    hedged_after_s: float | None = None
    """When the second stream was started (None: it never was)."""
    errors: dict[int, BaseException] = field(default_factory=dict)
    """What went wrong with either, by index (a deadline missed is a TimeoutError)."""


def hedge_delay(recent_first_s: Sequence[float], ceiling_s: float, floor_s: float = 0.3) -> float:
    """How long to wait for a provider's first output before racing it: twice its usual (median of
    its recent first outputs), between `floor_s` and `ceiling_s`; the ceiling until it has a history."""
    if len(recent_first_s) < 3:
        return ceiling_s
    return max(floor_s, min(ceiling_s, 2 * statistics.median(recent_first_s)))


async def race(
    first: AsyncIterator[T],
    deadline_s: float,
    hedge_after_s: float | None = None,
    open_second: Callable[[], AsyncIterator[T]] | None = None,
) -> Outcome[T]:
    """The first item of `first` within `deadline_s`; if there is none after `hedge_after_s`, the first
    item of whichever of `first` and `open_second()` (which gets its own `deadline_s`) gives one first."""
    loop = asyncio.get_running_loop()
    started = [loop.time()]
    streams = [first]
    tasks: dict[asyncio.Future[object], int] = {asyncio.ensure_future(_next(first)): 0}
    hedge_at = started[0] + hedge_after_s if hedge_after_s is not None and open_second is not None else None
    outcome: Outcome[T] = Outcome(None)
    try:
        while tasks:
            deadlines = [started[i] + deadline_s for i in tasks.values()]
            wake = min(deadlines + ([hedge_at] if hedge_at is not None else []))
            done, _ = await asyncio.wait(tasks, timeout=max(0.0, wake - loop.time()),
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            for task in done:
                index = tasks.pop(task)
                error = task.exception()
                if error is not None:
                    outcome.errors[index] = error
                    await _close(streams[index])
                    continue
                value = task.result()
                outcome.winner, outcome.stream = index, streams[index]
                outcome.first = None if value is _END else value  # type: ignore[assignment]
                outcome.first_after_s = loop.time() - started[index]
                return outcome
            now = loop.time()
            for task, index in list(tasks.items()):
                if now >= started[index] + deadline_s:
                    del tasks[task]
                    await _stop(task, streams[index])
                    outcome.errors[index] = TimeoutError(f"nothing within {deadline_s:g} s")
            if hedge_at is not None and now >= hedge_at and open_second is not None:
                hedge_at = None
                outcome.hedged_after_s = now - started[0]
                started.append(now)
                streams.append(open_second())
                tasks[asyncio.ensure_future(_next(streams[1]))] = 1
        return outcome
    finally:
        for task, index in tasks.items():  # the loser (or both, if this was cancelled)
            await _stop(task, streams[index])


async def _next(stream: AsyncIterator[T]) -> object:
    return await anext(stream, _END)


async def _stop(task: asyncio.Future[object], stream: AsyncIterator[T]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    await _close(stream)


async def _close(stream: AsyncIterator[T]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
