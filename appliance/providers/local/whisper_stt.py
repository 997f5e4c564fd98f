"""faster-whisper (CTranslate2, int8) speech-to-text.

Decoding is kept cheap because the transcript must be ready the moment the
turn ends: greedy search, no timestamps, no conditioning on earlier text, and
no internal VAD (ours already cut the utterance). Utterances that fit go
through a window sized to the clip (`whisper_window`), several times cheaper
than the 30 s window faster-whisper always encodes; longer ones, and any whose
short-window output looks degenerate, go through faster-whisper's own path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.audio.frames import ENGINE_RATE, Int16Array, to_float32
from appliance.providers.base import STT, TimedWord, Transcript
from appliance.providers.local.whisper_window import ShortWindowDecoder, WindowOptions
from appliance.providers.workers import EngineWorker

DEFAULT_WINDOW = WindowOptions()


@dataclass
class WindowCounts:
    """How utterances were decoded: by the short window, by the 30 s path after a degenerate
    short-window output (`fallbacks`), or by the 30 s path from the start (too long, or the
    language still to be detected)."""

    short: int = 0
    fallbacks: int = 0
    full: int = 0


class WhisperSTT(STT):
    def __init__(
        self,
        model_dir: Path,
        threads: int,
        language: str | None = "en",
        descriptor: str = "local/whisper-tiny.en",
        window: WindowOptions | None = DEFAULT_WINDOW,
    ) -> None:
        """`window`: the short-window options, or None for the 30 s path only."""
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self._language = language
        self._multilingual = bool(self._model.model.is_multilingual)
        self._short = ShortWindowDecoder(self._model, window) if window is not None else None
        self.counts = WindowCounts()
        self._worker = EngineWorker("stt")
        self.descriptor = descriptor

    def transcribe_sync(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        lang = self._language_for(language)
        samples = to_float32(audio)
        # A multilingual model without a language must detect it, which the 30 s path does.
        if self._short is not None and lang is not None and self._short.fits(samples, ENGINE_RATE):
            result = self._short.decode(samples, lang, prompt)
            if result is not None:
                self.counts.short += 1
                return Transcript(text=result.text, language=lang, seconds_of_audio=len(audio) / ENGINE_RATE)
            self.counts.fallbacks += 1
        else:
            self.counts.full += 1
        return self._full_window(samples, lang, prompt)

    def transcribe_full_window_sync(
        self, audio: Int16Array, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        """Always faster-whisper's 30 s path: the reference the short window is measured against."""
        return self._full_window(to_float32(audio), self._language_for(language), prompt)

    def _language_for(self, language: str | None) -> str | None:
        return "en" if not self._multilingual else (language or self._language)

    def _full_window(self, samples: npt.NDArray[np.float32], lang: str | None, prompt: str | None) -> Transcript:
        segments, info = self._thirty_seconds(
            samples, lang, without_timestamps=True, suppress_blank=True, initial_prompt=prompt
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text=text, language=info.language, seconds_of_audio=len(samples) / ENGINE_RATE)

    def _thirty_seconds(self, samples: npt.NDArray[np.float32], lang: str | None, **extra: Any) -> Any:
        """faster-whisper's own 30 s path, decoded cheaply: greedy, no conditioning on earlier text, no VAD."""
        return self._model.transcribe(
            samples,
            language=lang,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
            **extra,
        )

    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        return await self._worker.run(lambda: self.transcribe_sync(audio, language, prompt))

    async def timed_words(
        self, audio: Int16Array, language: str | None = None, prompt: str | None = None
    ) -> list[TimedWord] | None:
        return await self._worker.run(lambda: self.timed_words_sync(audio, language, prompt))

    def timed_words_sync(
        self, audio: Int16Array, language: str | None = None, prompt: str | None = None
    ) -> list[TimedWord]:
        """Words and their times from Whisper's cross-attention: over the short window when it fits (as the
        transcript is), else faster-whisper's own 30 s path with `word_timestamps` (several times the cost)."""
        lang = self._language_for(language)
        samples = to_float32(audio)
        if self._short is not None and lang is not None and self._short.fits(samples, ENGINE_RATE):
            words = self._short.timed_words(samples, lang, prompt)
            if words is not None:
                return words
        segments, _info = self._thirty_seconds(samples, lang, word_timestamps=True, initial_prompt=prompt)
        return [
            TimedWord(word.word.strip(), float(word.start), float(word.end))
            for segment in segments
            for word in segment.words or []
        ]

    async def warm_up(self) -> None:
        # Both paths: the first fallback to 30 s must not pay for a cold encoder either.
        silence = np.zeros(ENGINE_RATE // 2, dtype=np.int16)
        await self.transcribe(silence)
        await self._worker.run(lambda: self.transcribe_full_window_sync(silence))
        self.counts = WindowCounts()

    async def aclose(self) -> None:
        await self._worker.aclose()
