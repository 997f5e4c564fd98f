"""First audio: each answer's first piece as replies cut it, against its whole first sentence.

Each answer is spoken both ways by the device's TTS chain, piece after piece as a reply speaks them, and
heard back by its STT. Reported for each way: the time to the first audio (p50/p95) and the word error rate
of the whole answer as heard, so a sooner first audio that garbles the answer would show. Run while the
device is otherwise idle: the first audio here has the cores a reply gives it (the LLM pauses for it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample
from appliance.bench.wer import word_error_rate
from appliance.providers.base import STT, TTS
from appliance.voice.chunker import SentenceChunker

ANSWERS = (
    "The capital of France is Paris.",
    "A day is 24 hours, so a week has 7 days.",
    "The sky on a clear day is usually a deep, rich shade of blue.",
    "The fun fact about cats is that they sleep for most of the day.",
    "The boiling point of water is 100 degrees Celsius.",
    "The opposite of hot is cold.",
    "The day after Monday is Tuesday.",
    "My favorite color is green because it reminds me of nature.",
    "The largest planet in our solar system is Jupiter.",
    "The kitchen light is now on.",
    "Your timer for five minutes has started.",
    "Sure, I can help you with that.",
)


def pieces(text: str, cut: bool) -> list[str]:
    """`text` as a reply hands it to TTS, token by token (`cut`), or in whole sentences."""
    chunker = SentenceChunker() if cut else SentenceChunker.whole_sentences()
    out: list[str] = []
    for word in text.split(" "):
        out += chunker.push(word + " ")
    return out + chunker.flush()


async def _spoken(tts: TTS, text: str, cut: bool) -> tuple[float, AudioChunk]:
    started = time.perf_counter()
    first: float | None = None
    chunks: list[AudioChunk] = []
    for piece in pieces(text, cut):
        async for chunk in tts.synthesize(piece):
            if first is None:
                first = time.perf_counter() - started
            chunks.append(chunk)
    assert first is not None, f"no audio for {text!r}"
    return first, AudioChunk(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)


async def first_audio_bench(tts: TTS, stt: STT, answers: tuple[str, ...] = ANSWERS) -> dict[str, Any]:
    """Both ways, answer by answer in alternating order (a noisy machine slows both alike)."""
    firsts: dict[bool, list[float]] = {False: [], True: []}
    heard: dict[bool, list[tuple[str, str]]] = {False: [], True: []}
    await _spoken(tts, "Ready.", cut=False)  # warm
    for index, text in enumerate(answers):
        for cut in (index % 2 == 0, index % 2 == 1):
            first, audio = await _spoken(tts, text, cut)
            firsts[cut].append(first)
            transcript = await stt.transcribe(resample(audio, ENGINE_RATE).samples)
            heard[cut].append((text, transcript.text))

    def way(cut: bool) -> dict[str, Any]:
        ms = [1000 * f for f in firsts[cut]]
        return {
            "first_audio_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))},
            "word_error_rate": round(word_error_rate(heard[cut]), 3),
        }

    return {"answers": len(answers), "whole_sentence": way(False), "cut": way(True)}
