"""Asyncio helpers every part shares: stopping tasks for sure, a set of owned background tasks, backoff.

On Python 3.11 `asyncio.wait_for` can swallow a cancellation that arrives just as the inner future
completes (fixed in 3.12); libraries use it (aiomqtt's publish does), so a task cancelled once can carry
on and then wait forever. A task that must end is cancelled again until it does, within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], timeout: float = 3.0) -> set[asyncio.Task[Any]]:
    """Cancel the tasks, re-cancelling any that swallowed it; returns those still running at the deadline."""
    pending = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(0.2, remaining))
    return pending


class TaskSet:
    """The background tasks one part owns: each is referenced until done, a failure is logged with the
    task's name (never lost in a garbage-collected task), and `aclose` cancels and awaits them all."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        return self.keep(asyncio.get_running_loop().create_task(coro, name=name))

    def keep(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Own a task started elsewhere."""
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: background task %s failed", self.owner, task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    async def wait(self, timeout: float) -> None:
        """Let the tasks finish on their own, up to `timeout`."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def aclose(self, timeout: float = 3.0) -> set[asyncio.Task[Any]]:
        """Cancel every task and wait; returns those still running at the deadline."""
        return await cancel_and_wait(list(self._tasks), timeout)


class Backoff:
    """Exponential backoff with full jitter: each wait is uniform in [0, cap], and the cap doubles up to
    `max_s`. A thousand boxes that lost the same broker (or sound server, or LiveKit) come back spread
    over the window instead of all at once."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self._cap = initial_s

    def next(self) -> float:
        """The next wait (seconds), and the cap goes up for the one after."""
        delay = self._rng.uniform(0.0, self._cap)
        self._cap = min(self._cap * 2, self.max_s)
        return delay

    def reset(self) -> None:
        """It worked: the next failure starts from `initial_s` again."""
        self._cap = self.initial_s
