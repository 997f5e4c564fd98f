"""Stopping asyncio tasks for sure.

On Python 3.11 `asyncio.wait_for` can swallow a cancellation that arrives just as the inner future
completes (fixed in 3.12); libraries use it (aiomqtt's publish does), so a task cancelled once can carry
on and then wait forever. A task that must end is cancelled again until it does, within a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


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
