"""Speech from another pipeline: the session hands the heard utterance to another pipeline (Home Assistant's,
with the device as its satellite) and plays the spoken answer it gets back; and that pipeline's own
announcements are spoken like the device's."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk, Int16Array
from appliance.providers.base import STT, TTS
from appliance.voice.activation import request_start, wake_prompt
from appliance.voice.turn_record import TurnRecord

log = logging.getLogger(__name__)

PLAYED_CHUNK_S = 0.1
"""Recorded speech goes to the output in pieces this long, as a voice's audio does."""


class RemotePipeline(Protocol):
    async def answer(self, audio: Int16Array, play: Callable[[AudioChunk], None], record: TurnRecord) -> bool:
        """Answer the request in `audio` (16 kHz mono), playing the answer through `play` and filling in the
        record's texts; False when this device should answer itself (the other pipeline is not there, or
        did not answer in time)."""
        ...


def joined(frames: list[Int16Array]) -> Int16Array:
    """A turn's frames as one utterance."""
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)


def wake_phrase_cutter(stt: Callable[[], STT], wake_phrase: str) -> Callable[[Int16Array], Awaitable[Int16Array]]:
    """What to send another pipeline of an utterance: without the wake phrase it starts with. The device's
    turn begins where the user began ("hey appliance, turn on the light"); a satellite that wakes on its
    own streams only what follows, and that is what Home Assistant expects (its intents do not match a
    sentence that starts with a wake phrase). Cut where the STT's word times put the request's start, heard
    with the same prompt as the session's transcript (without it Whisper misheard the phrase on one CI
    machine, and the request went whole); sent whole when the engine gives no word times or they do not
    start with the phrase."""

    async def cut(audio: Int16Array) -> Int16Array:
        try:
            words = await stt().timed_words(audio, prompt=wake_prompt(wake_phrase))
        except Exception as exc:  # the request still goes, wake phrase and all
            log.warning("no word times to cut the wake phrase at: %s", exc)
            return audio
        start = request_start(wake_phrase, words or [])
        return audio if start is None else audio[int(start * ENGINE_RATE) :]

    return cut


class RecordedSpeech(TTS):
    """Audio made elsewhere (an announcement Home Assistant sends its satellite), spoken as the device speaks
    its own announcements: after the current turn, interruptible, at the device's volume and through its echo
    canceller. A "voice" that says this audio once, whatever the text; `str()` is what the turn record and
    the log call it."""

    descriptor = "recorded"

    def __init__(self, audio: AudioChunk, label: str) -> None:
        self.audio = audio
        self.sample_rate = audio.sample_rate
        self.label = label
        self._said = False
        self._started_at: float | None = None
        self._handed_over = asyncio.Event()

    def __str__(self) -> str:
        return self.label

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        if self._said:
            return  # a label the sentence splitter cut in two: the audio is said once
        self._said = True
        self._started_at = time.monotonic()
        step = max(1, int(PLAYED_CHUNK_S * self.sample_rate))
        try:
            for at in range(0, len(self.audio.samples), step):
                yield AudioChunk(self.audio.samples[at : at + step], self.sample_rate)
        finally:
            self._handed_over.set()

    async def played(self, timeout: float) -> bool:
        """Until the audio has played out (handed to the output, and as long again as it lasts from its
        start); False if it did not start within `timeout` (dropped by a `stop`, or the device busy)."""
        try:
            await asyncio.wait_for(self._handed_over.wait(), timeout)
        except TimeoutError:
            return False
        assert self._started_at is not None
        await asyncio.sleep(max(0.0, self._started_at + self.audio.duration - time.monotonic()))
        return True
