"""The text-to-speech service: text in, the device's voice out as a Wyoming audio stream.

Text is cut into sentences (the reply's own chunker, whose first piece may end at a comma) and each is
synthesized in turn, so the first audio chunk leaves after the first sentence, not after the whole text.
Streamed text (synthesize-start/-chunk/-stop, as Home Assistant sends an LLM's reply while it is written)
goes through the same chunker as it arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event

from appliance.audio.resample import resample
from appliance.providers.base import TTS
from appliance.voice.chunker import SentenceChunker

WIDTH, CHANNELS = 2, 1
CHUNK_SAMPLES = 4096
"""Samples per audio-chunk event (about 0.2 s at 22 kHz): a player can start on the first one."""

Write = Callable[[Event], Awaitable[None]]


async def speak(tts: TTS, sentences: AsyncIterator[str], write: Write) -> int:
    """audio-start, the chunks of every sentence, audio-stop; returns the samples sent. The stream keeps the
    rate of its first audio; a fallback voice at another rate is converted to it."""
    rate: int | None = None
    sent = 0
    async for sentence in sentences:
        async for chunk in tts.synthesize(sentence):
            if rate is None:
                rate = chunk.sample_rate
                await write(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
            samples = resample(chunk, rate).samples.astype("<i2")
            for at in range(0, len(samples), CHUNK_SAMPLES):
                block = samples[at : at + CHUNK_SAMPLES]
                await write(AudioChunk(rate=rate, width=WIDTH, channels=CHANNELS, audio=block.tobytes()).event())
            sent += len(samples)
    if rate is None:  # nothing to say: still a well-formed, empty stream
        await write(AudioStart(rate=tts.sample_rate, width=WIDTH, channels=CHANNELS).event())
    await write(AudioStop().event())
    return sent


async def sentences_of(text: str) -> AsyncIterator[str]:
    chunker = SentenceChunker()
    for piece in [*chunker.push(text), *chunker.flush()]:
        yield piece


class StreamedText:
    """Text arriving in pieces, handed on sentence by sentence as each completes."""

    def __init__(self) -> None:
        self._chunker = SentenceChunker()
        self._ready: asyncio.Queue[str | None] = asyncio.Queue()

    def add(self, text: str) -> None:
        for piece in self._chunker.push(text):
            self._ready.put_nowait(piece)

    def end(self) -> None:
        for piece in self._chunker.flush():
            self._ready.put_nowait(piece)
        self._ready.put_nowait(None)

    async def sentences(self) -> AsyncIterator[str]:
        while (piece := await self._ready.get()) is not None:
            yield piece
