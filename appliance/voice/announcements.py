"""What the agent was asked to say from outside (the `say` command), spoken one after another.

A bounded line with one speaker. Before it, each `say` was a task of its own waiting for the
session to fall idle: two hundred commands made two hundred waiting tasks that a `stop` did
not touch (the next one began the moment the last was silenced), that outlived the call they
were meant for (a caller who joined later heard the rest), and that were still pending when
their conversation closed. Here a burst beyond `limit` is refused at once with a clear error,
a stop drops what waits, the end of a call drops what was meant for it, and closing cancels
the speaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from appliance.voice.remote import RecordedSpeech

log = logging.getLogger(__name__)

Announcement = str | RecordedSpeech
"""A line for the device's voice, or speech another pipeline made (Home Assistant's announce)."""

SAY_QUEUE_LIMIT = 10
"""Announcements that may wait behind the one being spoken; a device that is told more is refused."""


class SayQueueFull(RuntimeError):
    """Too many announcements already waiting (one line; the fleet answers `busy`)."""


class Announcements:
    def __init__(self, speak: Callable[[Announcement], Awaitable[None]], limit: int = SAY_QUEUE_LIMIT) -> None:
        self._speak = speak
        self.limit = limit
        self._waiting: deque[Announcement] = deque()
        self._speaker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Announcements not yet begun (the one being spoken is not counted)."""
        return len(self._waiting)

    def add(self, text: Announcement) -> int:
        """Queue `text`; returns how many wait before it. Raises SayQueueFull beyond `limit`."""
        if len(self._waiting) >= self.limit:
            raise SayQueueFull(
                f"{len(self._waiting)} announcements are already waiting (the limit is {self.limit}); "
                "send stop, or wait until some are said"
            )
        self._waiting.append(text)
        if self._speaker is None or self._speaker.done():
            self._speaker = asyncio.get_running_loop().create_task(self._speak_all(), name="say")
        return len(self._waiting) - 1

    def clear(self) -> int:
        """Drop every announcement not yet finished, including the one in hand (it may be waiting for
        the session to fall idle, which would let it speak to whoever comes next); what already plays
        is for the session's `stop_speaking`. Returns how many were dropped."""
        speaker, self._speaker = self._speaker, None
        in_hand = speaker is not None and not speaker.done()
        if speaker is not None and in_hand:
            speaker.cancel()
        dropped = len(self._waiting) + int(in_hand)
        self._waiting.clear()
        return dropped

    async def aclose(self) -> None:
        speaker = self._speaker
        self.clear()
        if speaker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await speaker

    async def _speak_all(self) -> None:
        while self._waiting:
            text = self._waiting.popleft()
            try:
                await self._speak(text)
            except Exception as exc:  # one announcement that fails does not silence the rest
                log.warning("could not say %r: %s", str(text)[:80], exc)
