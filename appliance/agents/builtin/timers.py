"""Kitchen timers that ring through the agent's voice, even when nobody is talking to it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Timer:
    label: str
    seconds: float
    ends_at: float
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def remaining(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())


class Timers:
    def __init__(self, ring: Callable[[str], Awaitable[None]]) -> None:
        self._ring = ring
        self.running: dict[str, Timer] = {}

    def start(self, label: str, seconds: float) -> Timer:
        self.cancel(label)
        timer = Timer(label, seconds, time.monotonic() + seconds)
        timer.task = asyncio.create_task(self._wait(timer), name=f"timer-{label}")
        self.running[label] = timer
        return timer

    def cancel(self, label: str | None = None) -> list[Timer]:
        """Cancel one timer by label, or every timer when label is None."""
        labels = list(self.running) if label is None else [label] if label in self.running else []
        cancelled = [self.running.pop(name) for name in labels]
        for timer in cancelled:
            if timer.task is not None:
                timer.task.cancel()
        return cancelled

    async def _wait(self, timer: Timer) -> None:
        await asyncio.sleep(timer.seconds)
        self.running.pop(timer.label, None)
        with contextlib.suppress(Exception):
            await self._ring(
                f"Your {timer.label} is done." if "timer" in timer.label else f"Your {timer.label} timer is done."
            )


def say_duration(seconds: float) -> str:
    seconds = round(seconds)
    minutes, rest = divmod(seconds, 60)
    parts = []
    if minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    if rest or not minutes:
        parts.append(f"{rest} second{'s' if rest != 1 else ''}")
    return " and ".join(parts)
