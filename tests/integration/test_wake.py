"""Wake phrase on real speech: commands with and without it, two voices, and unrelated talk."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.bench.wake_eval import evaluate_wake
from appliance.providers.local.piper_tts import PiperTTS
from tests.integration.speech_check import whisper


def test_wake_phrase_misses_at_most_one_in_ten_and_never_false_accepts(models_dir: Path) -> None:
    voice = models_dir / "piper-joe-medium"
    tts = PiperTTS(voice / "en_US-joe-medium.onnx", voice / "en_US-joe-medium.onnx.json", threads=2)
    report = asyncio.run(evaluate_wake(whisper(models_dir), tts))
    assert report.with_phrase >= 20 and report.without_phrase >= 40
    assert report.unrelated_seconds >= 60
    assert report.false_accepts == [], report.false_accepts
    assert len(report.misses) <= report.with_phrase // 10, report.misses
