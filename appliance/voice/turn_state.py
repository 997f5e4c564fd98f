"""What the session tracks about the turn in progress: the parts it needs, the speculative
transcript, and the committed turn with its reply."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from appliance.audio.frames import Int16Array
from appliance.providers.base import LLM, STT, TTS, VAD, Transcript
from appliance.voice.reply import Reply
from appliance.voice.turn_record import TurnRecord


@dataclass
class Providers:
    vad: VAD
    stt: STT
    llm: LLM
    tts: TTS

    def descriptors(self) -> dict[str, str]:
        return {"stt": self.stt.descriptor, "llm": self.llm.descriptor, "tts": self.tts.descriptor}


@dataclass
class Speculation:
    """A transcript made during a pause, valid while the user stays quiet."""

    task: asyncio.Task[Transcript]
    reply: Reply | None = None
    reply_text: str = ""

    @property
    def text(self) -> str | None:
        if self.task.done() and not self.task.cancelled() and self.task.exception() is None:
            return self.task.result().text
        return None


@dataclass
class ActiveTurn:
    record: TurnRecord
    frames: list[Int16Array]
    last_voiced: float
    utterance: int
    speculation: Speculation | None
    task: asyncio.Task[None] | None = None
    reply: Reply | None = None
    announcement: bool = False
    """Said on the agent's own initiative (a timer rang): no user turn, no record."""
    generated: bool = False
    pieces_started: set[int] = field(default_factory=set)

    async def stop(self) -> None:
        """Cancel the turn's work and its reply (the conversation is closing)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.reply is not None:
            await self.reply.cancel()
