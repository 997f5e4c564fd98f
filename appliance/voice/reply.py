"""One spoken reply: LLM tokens -> sentence pieces -> TTS -> the output, streamed.

The LLM keeps writing while TTS speaks the first piece. A reply can be started
before the turn is committed (preemptive generation) with its gate closed: it
computes but plays nothing until `release()`. `cancel()` stops the LLM and TTS
at once (their worker loops check a cancel flag between tokens / sentences).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from appliance.audio.frames import AudioChunk
from appliance.config import TimeoutsConfig
from appliance.providers.base import LLM, TTS
from appliance.voice.chunker import SentenceChunker

log = logging.getLogger(__name__)
T = TypeVar("T")


class ReplyTimeout(Exception):
    """A stage ("llm" or "tts") did not produce its first output within its deadline."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass
class ReplyMetrics:
    llm_ttft: float | None = None
    tts_ttfb: float | None = None
    pieces: list[str] = field(default_factory=list)


PlayFn = Callable[[AudioChunk, int], None]
"""(chunk, piece index) -> None: hands audio to the output."""


TextSource = Callable[["Reply"], AsyncIterator[str]]
"""Makes the reply's text stream (the agent runtime's `respond`, or a fixed line)."""


def fixed_text(text: str) -> TextSource:
    """A reply that is one given line (an announcement)."""

    async def line(_reply: Reply) -> AsyncIterator[str]:
        yield text

    return line


class Reply:
    def __init__(
        self,
        text: TextSource,
        tts: TTS,
        play: PlayFn,
        timeouts: TimeoutsConfig,
        *,
        llm: LLM | None = None,
        held: bool = False,
    ) -> None:
        """`llm` (if any) is told to yield the CPU while TTS makes the first audio, and to resume once it is made
        (or could not be)."""
        self._text = text
        self._llm = llm
        self._tts = tts
        self._play = play
        self._timeouts = timeouts
        self._gate = asyncio.Event()
        if not held:
            self._gate.set()
        self.metrics = ReplyMetrics()
        self.pieces_queued = 0
        """Sentence pieces of text handed to TTS so far."""
        self.pieces_played = 0
        """Of those, the pieces whose audio has all gone to the output (or that had none)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reply")

    def release(self) -> None:
        self._gate.set()

    async def wait_released(self) -> None:
        """Until the turn is committed: a held reply computes but must not act or play."""
        await self._gate.wait()

    def retarget(self, play: PlayFn) -> None:
        """Say where the audio goes; a held reply is made before its turn exists."""
        self._play = play

    @property
    def held(self) -> bool:
        return not self._gate.is_set()

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    @property
    def text(self) -> str:
        return " ".join(self.metrics.pieces)

    async def wait(self) -> None:
        """Wait for the reply to finish; re-raises its error (timeouts included)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write(pieces), name="reply-llm")
        try:
            await self._speak(pieces)
            await writer
        finally:
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer

    async def _write(self, pieces: asyncio.Queue[str | None]) -> None:
        chunker = SentenceChunker()
        started = _now()
        tokens = self._text(self)
        try:
            first = await _first_within(tokens, self._timeouts.llm_first_token_s, "LLM first token", "llm")
            if first is None:
                return
            self.metrics.llm_ttft = _now() - started
            for piece in chunker.push(first):
                self._queue(pieces, piece)
            async for token in tokens:
                for piece in chunker.push(token):
                    self._queue(pieces, piece)
            for piece in chunker.flush():
                self._queue(pieces, piece)
        finally:
            pieces.put_nowait(None)
            await _aclose(tokens)

    def _queue(self, pieces: asyncio.Queue[str | None], piece: str) -> None:
        self.pieces_queued += 1
        pieces.put_nowait(piece)

    async def _speak(self, pieces: asyncio.Queue[str | None]) -> None:
        index = 0
        while (text := await pieces.get()) is not None:
            started = _now()
            if index == 0 and self._llm is not None:
                self._llm.yield_cpu()  # the first audio is on the critical path now, the LLM is not
            audio = self._tts.synthesize(text)
            try:
                try:
                    first = await _first_within(audio, self._timeouts.tts_first_audio_s, "TTS first audio", "tts")
                finally:
                    if index == 0 and self._llm is not None:
                        self._llm.resume_cpu()
                if first is None:
                    continue
                if self.metrics.tts_ttfb is None:
                    self.metrics.tts_ttfb = _now() - started
                self.metrics.pieces.append(text)
                await self._gate.wait()
                self._play(first, index)
                async for chunk in audio:
                    self._play(chunk, index)
            finally:
                await _aclose(audio)
                self.pieces_played += 1
            index += 1


def _now() -> float:
    """The loop's clock: monotonic in production, virtual in tests."""
    return asyncio.get_running_loop().time()


async def _first_within(stream: AsyncIterator[T], seconds: float, what: str, stage: str) -> T | None:
    try:
        async with asyncio.timeout(seconds):
            return await anext(stream, None)
    except TimeoutError:
        raise ReplyTimeout(f"{what} did not arrive within {seconds:g} s", stage) from None


async def _aclose(stream: AsyncIterator[object]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
