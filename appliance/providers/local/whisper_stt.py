"""faster-whisper (CTranslate2, int8) speech-to-text.

Decoding is kept cheap because the transcript must be ready the moment the
turn ends: greedy search, no timestamps, no conditioning on earlier text, and
no internal VAD (ours already cut the utterance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance.audio.frames import ENGINE_RATE, Int16Array, to_float32
from appliance.providers.base import STT, Transcript
from appliance.providers.workers import EngineWorker


class WhisperSTT(STT):
    def __init__(
        self,
        model_dir: Path,
        threads: int,
        language: str | None = "en",
        descriptor: str = "local/whisper-tiny.en",
    ) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self._language = language
        self._multilingual = bool(self._model.model.is_multilingual)
        self._worker = EngineWorker("stt")
        self.descriptor = descriptor

    def transcribe_sync(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        lang = language or self._language
        if not self._multilingual:
            lang = "en"
        segments, info = self._model.transcribe(
            to_float32(audio),
            language=lang,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            suppress_blank=True,
            initial_prompt=prompt,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text=text, language=info.language, seconds_of_audio=len(audio) / ENGINE_RATE)

    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        return await self._worker.run(lambda: self.transcribe_sync(audio, language, prompt))

    async def warm_up(self) -> None:
        await self.transcribe(np.zeros(ENGINE_RATE // 2, dtype=np.int16))

    async def aclose(self) -> None:
        await self._worker.aclose()
