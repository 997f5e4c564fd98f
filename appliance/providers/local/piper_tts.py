"""Piper text-to-speech (onnxruntime), one chunk per sentence.

We build the onnxruntime session ourselves so the compute budget decides its
thread count (Piper's own loader uses onnxruntime's default: every core), with
its threads sleeping instead of spinning between runs: the same first audio here
for a fifth less CPU, which the LLM running beside it gets.
piper-tts is GPL-3.0-or-later; the voice weights have their own license.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from appliance.audio.frames import AudioChunk, Int16Array, to_int16
from appliance.providers.base import TTS
from appliance.providers.workers import EngineWorker

_SENTENCE_END = re.compile(r"[.!?;:…][\"')\]]*\s*$")
MID_SENTENCE_PAUSE_S = 0.05
"""Silence kept after a piece that ends mid-sentence: with the next piece's own lead-in (~0.05 s) a short
phrase pause."""
COMMA_PAUSE_S = 0.1
"""...and after one that ends at a comma, a little longer, as a speaker pauses there."""


def trim_trailing_silence(samples: Int16Array, sample_rate: int, keep_s: float = MID_SENTENCE_PAUSE_S) -> Int16Array:
    """`samples` without the quiet after the last sound beyond `keep_s` (quiet: under 1 % of full scale)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 328)
    if loud.size == 0:
        return samples
    return samples[: min(len(samples), int(loud[-1]) + 1 + int(keep_s * sample_rate))]


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
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self._voice = PiperVoice(session=session, config=config)
        self._syn: Any = SynthesisConfig(length_scale=1.0 / speed, volume=volume)
        self.sample_rate = config.sample_rate
        self._worker = EngineWorker("tts")
        self.descriptor = descriptor

    def _synthesize(self, text: str, cancel: threading.Event) -> Iterator[AudioChunk]:
        mid_sentence = not _SENTENCE_END.search(text)
        held: AudioChunk | None = None
        for chunk in self._voice.synthesize(text, self._syn):
            if cancel.is_set():
                return
            audio = AudioChunk(to_int16(chunk.audio_float_array), chunk.sample_rate)
            if not mid_sentence:
                yield audio
                continue
            if held is not None:
                yield held
            held = audio
        if held is not None:
            # Piper ends every piece as if a sentence ended there (~0.15-0.2 s of silence); a piece cut
            # mid-sentence for an early first audio ("The capital of France | is Paris.") keeps a short pause.
            keep_s = COMMA_PAUSE_S if text.rstrip().endswith(",") else MID_SENTENCE_PAUSE_S
            yield AudioChunk(trim_trailing_silence(held.samples, held.sample_rate, keep_s), held.sample_rate)

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        async for chunk in self._worker.stream(lambda cancel: self._synthesize(text, cancel)):
            yield chunk

    async def warm_up(self) -> None:
        async for _ in self.synthesize("Ready."):
            pass

    async def aclose(self) -> None:
        await self._worker.aclose()
