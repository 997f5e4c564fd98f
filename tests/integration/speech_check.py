"""Hearing the agent's output again: transcribe a wav with the real Whisper and compare words."""

from __future__ import annotations

import asyncio
import re
from functools import cache
from pathlib import Path

import numpy as np

from appliance.agents.spoken import normalize
from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample
from appliance.providers.local.piper_tts import PiperTTS
from appliance.providers.local.whisper_stt import WhisperSTT


@cache
def whisper(models_dir: Path) -> WhisperSTT:
    return WhisperSTT(models_dir / "whisper-tiny.en", threads=2)


@cache
def piper(models_dir: Path) -> PiperTTS:
    voice = models_dir / "piper-joe-medium"
    return PiperTTS(voice / "en_US-joe-medium.onnx", voice / "en_US-joe-medium.onnx.json", threads=2)


def piper_speech(models_dir: Path, text: str) -> AudioChunk:
    """`text` in the packaged Piper voice, at the voice's own rate (one voice loaded per test process)."""

    async def speak() -> AudioChunk:
        chunks = [chunk async for chunk in piper(models_dir).synthesize(text)]
        return AudioChunk(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)

    return asyncio.run(speak())


def transcribe(models_dir: Path, audio: AudioChunk) -> str:
    return whisper(models_dir).transcribe_sync(resample(audio, ENGINE_RATE).samples).text


def words(text: str) -> list[str]:
    """Spoken words as the router reads them: "One." and "1." are the same word (TTS says digits as words,
    Whisper writes short numbers either way)."""
    return re.findall(r"[a-z0-9]+", normalize(text))


def overlap(expected: str, heard: str) -> float:
    """Share of the expected words that were heard."""
    want = words(expected)
    got = set(words(heard))
    return sum(w in got for w in want) / len(want) if want else 0.0


def audible(audio: AudioChunk, start: float, end: float, level: int = 500) -> bool:
    block = audio.samples[int(start * audio.sample_rate) : int(end * audio.sample_rate)]
    return bool(np.any(np.abs(block.astype(np.int32)) > level))


def onset(audio: AudioChunk, level: int = 500) -> float:
    loud = np.flatnonzero(np.abs(audio.samples.astype(np.int32)) > level)
    return float(loud[0]) / audio.sample_rate if len(loud) else 0.0
