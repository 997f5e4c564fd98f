"""Piper text-to-speech (onnxruntime), one chunk per sentence.

We build the onnxruntime session ourselves so the compute budget decides its
thread count (Piper's own loader uses onnxruntime's default: every core).
piper-tts is GPL-3.0-or-later; the voice weights have their own license.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from appliance.audio.frames import AudioChunk, to_int16
from appliance.providers.base import TTS
from appliance.providers.workers import EngineWorker


class PiperTTS(TTS):
    def __init__(
        self,
        model_path: Path,
        config_path: Path,
        threads: int,
        speed: float = 1.0,
        volume: float = 0.8,
        descriptor: str = "local/piper-joe-medium",
    ) -> None:
        import onnxruntime as ort
        from piper.config import PiperConfig, SynthesisConfig
        from piper.voice import PiperVoice

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self._voice = PiperVoice(session=session, config=config)
        self._syn: Any = SynthesisConfig(length_scale=1.0 / speed, volume=volume)
        self.sample_rate = config.sample_rate
        self._worker = EngineWorker("tts")
        self.descriptor = descriptor

    def _synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        for chunk in self._voice.synthesize(text, self._syn):
            if cancel.is_set():
                return
            yield AudioChunk(to_int16(chunk.audio_float_array), chunk.sample_rate)

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        async for chunk in self._worker.stream(lambda cancel: self._synthesize(text, cancel)):
            yield chunk

    async def warm_up(self) -> None:
        async for _ in self.synthesize("Ready."):
            pass

    async def aclose(self) -> None:
        await self._worker.aclose()
