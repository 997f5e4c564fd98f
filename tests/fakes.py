"""Scriptable providers for session tests: deterministic, and able to fail on demand.

Waiting is done with asyncio.sleep, so under the virtual clock it costs no real time.
Speech in these tests is a constant non-zero signal; FakeVAD hears any frame whose
mean level is above a threshold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk, Int16Array
from appliance.providers.base import LLM, STT, TTS, VAD, ChatMessage, LLMOptions, Transcript

SPEECH_LEVEL = 3000
HANG = float("inf")


def speech(seconds: float) -> AudioChunk:
    return AudioChunk(np.full(round(seconds * ENGINE_RATE), SPEECH_LEVEL, dtype=np.int16), ENGINE_RATE)


def silence(seconds: float) -> AudioChunk:
    return AudioChunk.silence(seconds)


def join(*chunks: AudioChunk) -> AudioChunk:
    return AudioChunk(np.concatenate([c.samples for c in chunks]), ENGINE_RATE)


class FakeVAD(VAD):
    descriptor = "fake/vad"

    def __init__(self) -> None:
        self.frames = 0

    async def probability(self, frame: Int16Array) -> float:
        self.frames += 1
        return 0.95 if float(np.mean(np.abs(frame.astype(np.int32)))) > SPEECH_LEVEL / 2 else 0.02

    def reset(self) -> None:
        self.frames = 0

    def fork(self) -> FakeVAD:
        return self  # stateless by level, and tests count the frames a session ran through it


class FakeSTT(STT):
    descriptor = "fake/stt"

    def __init__(self, text: str | Callable[[float], str] = "what time is it?", delay: float = 0.1) -> None:
        self.text = text
        self.delay = delay
        self.calls: list[float] = []

    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        seconds = len(audio) / ENGINE_RATE
        self.calls.append(seconds)
        await asyncio.sleep(self.delay if self.delay != HANG else 1e9)
        text = self.text(seconds) if callable(self.text) else self.text
        return Transcript(text, "en", seconds)


class FakeLLM(LLM):
    descriptor = "fake/llm"

    def __init__(
        self,
        reply: str = "It is noon. Have a nice day.",
        first_token_delay: float = 0.05,
        token_delay: float = 0.01,
    ) -> None:
        self.reply = reply
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self.requests: list[list[ChatMessage]] = []
        self.choices: list[str] = []
        """Scripted answers for `choose` (in order); when empty it picks the first option."""
        self.json_replies: list[dict[str, object]] = []
        """Scripted answers for `complete_json` (in order); when empty, {}."""
        self.choose_calls: list[list[str]] = []
        self.completed = 0
        self.stopped_early = 0

    async def choose(self, messages: Sequence[ChatMessage], options: Sequence[str]) -> str:
        self.choose_calls.append(list(options))
        return self.choices.pop(0) if self.choices else options[0]

    async def complete_json(self, messages: Sequence[ChatMessage], schema: dict[str, object]) -> dict[str, object]:
        return self.json_replies.pop(0) if self.json_replies else {}

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        self.requests.append(list(messages))
        finished = False
        try:
            await asyncio.sleep(self.first_token_delay if self.first_token_delay != HANG else 1e9)
            for index, word in enumerate(self.reply.split(" ")):
                if index:
                    await asyncio.sleep(self.token_delay)
                yield word if index == 0 else " " + word
            finished = True
            self.completed += 1
        finally:
            if not finished:
                self.stopped_early += 1


class FakeTTS(TTS):
    """Speaks `seconds_per_word` of a loud tone per word, after `delay`."""

    descriptor = "fake/tts"
    sample_rate = ENGINE_RATE

    def __init__(self, seconds_per_word: float = 0.25, delay: float = 0.03) -> None:
        self.seconds_per_word = seconds_per_word
        self.delay = delay
        self.texts: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        self.texts.append(text)
        await asyncio.sleep(self.delay if self.delay != HANG else 1e9)
        samples = round(len(text.split()) * self.seconds_per_word * ENGINE_RATE)
        yield AudioChunk(np.full(samples, 8000, dtype=np.int16), ENGINE_RATE)
