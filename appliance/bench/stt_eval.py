"""Speech-to-text speed and accuracy: the short window against the 30 s path, same clips, same run.

The held-out set (tests/data/stt, sentences in stt.toml: several synthetic voices, accents
and speeds, short questions and 7-9 s sentences) and the bench questions are transcribed by
both paths of one Whisper model, clip by clip, in alternating order so the machine's noise
falls on both alike. Reported per path: latency p50/p95 and WER; for the short path also
how often it fell back to 30 s; and the clips whose words differ between the paths.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from appliance.audio.wav import read_wav
from appliance.bench.wer import normalized_words, word_error_rate
from appliance.models.store import open_store
from appliance.providers.base import STT, Transcript
from appliance.providers.compute import ComputeBudget
from appliance.providers.local.whisper_stt import WhisperSTT, WindowCounts
from appliance.providers.registry import build_stt

DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "data"


class SttBenchError(RuntimeError):
    """The measure cannot run here (one line)."""


@dataclass(frozen=True)
class SpokenClip:
    name: str
    path: Path
    text: str


@dataclass
class PathReport:
    latencies_ms: list[float] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "p50_ms": round(float(np.percentile(self.latencies_ms, 50)), 1) if self.latencies_ms else None,
            "p95_ms": round(float(np.percentile(self.latencies_ms, 95)), 1) if self.latencies_ms else None,
            "wer": round(word_error_rate(self.pairs), 4),
        }


def spoken_clips(data_dir: Path = DATA_DIR) -> list[SpokenClip]:
    """The held-out set, then the bench questions, each with the text that was spoken."""
    sentences = tomllib.loads((data_dir / "stt.toml").read_text())["sentences"]
    clips = [
        SpokenClip(path.stem, path, sentences[int(path.stem[1:3]) - 1])
        for path in sorted((data_dir / "stt").glob("s*.wav"))
    ]
    questions = tomllib.loads((data_dir / "questions.toml").read_text())["questions"]
    clips += [
        SpokenClip(path.stem, path, questions[int(path.stem[1:]) - 1])
        for path in sorted((data_dir / "questions").glob("q*.wav"))
    ]
    return clips


def whisper_of(stt: STT) -> WhisperSTT:
    """The local Whisper provider, alone, behind a swappable slot or in a fallback chain."""
    found = _find_whisper(stt)
    if found is None:
        raise SttBenchError("bench stt: the STT measure needs a local Whisper provider in [stt] provider")
    return found


def _find_whisper(provider: object) -> WhisperSTT | None:
    if isinstance(provider, WhisperSTT):
        return provider
    inner = [getattr(provider, "engine", None), *getattr(provider, "children", [])]
    return next((found for p in inner if p is not None and (found := _find_whisper(p)) is not None), None)


def evaluate_stt(stt: WhisperSTT, clips: list[SpokenClip]) -> dict[str, Any]:
    """Blocking: run it in a worker thread (or before the session starts)."""
    if not clips:
        raise SttBenchError(f"bench stt: no spoken clips in {DATA_DIR / 'stt'}")
    full, short = PathReport(), PathReport()
    stt.counts = WindowCounts()
    differing: list[dict[str, str]] = []
    for index, clip in enumerate(clips):
        audio = read_wav(clip.path).samples
        runs: list[tuple[PathReport, Callable[..., Transcript]]] = [
            (full, stt.transcribe_full_window_sync),
            (short, stt.transcribe_sync),
        ]
        texts = {}
        for report, transcribe in runs if index % 2 == 0 else reversed(runs):
            started = time.perf_counter()
            text = transcribe(audio).text
            report.latencies_ms.append(1000 * (time.perf_counter() - started))
            report.pairs.append((clip.text, text))
            texts[id(report)] = text
        if normalized_words(texts[id(full)]) != normalized_words(texts[id(short)]):
            differing.append({"clip": clip.name, "full": texts[id(full)], "short": texts[id(short)]})
    return {
        "model": stt.descriptor,
        "clips": len(clips),
        "audio_s": round(sum(len(read_wav(c.path).samples) for c in clips) / 16_000, 1),
        "full_window": full.to_json(),
        "short_window": {**short.to_json(), **stt.counts.__dict__},
        "differing": differing,
    }


async def stt_bench(stt: STT) -> dict[str, Any]:
    """The measure on a loaded STT provider (its worker is idle: no session is running)."""
    whisper = whisper_of(stt)
    return await asyncio.to_thread(evaluate_stt, whisper, spoken_clips())


async def stt_bench_alone(descriptor: str, models_dir: Path, threads: int, language: str | None) -> dict[str, Any]:
    """`appliance bench --stt`: only this measure, with only the STT model loaded."""
    stt = build_stt(descriptor, open_store(models_dir), ComputeBudget.for_cores(threads), language)
    try:
        return await stt_bench(stt)
    finally:
        await stt.aclose()
