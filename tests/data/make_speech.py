"""Regenerate the spoken test data from questions.toml with the packaged Piper voice.

Usage: python tests/data/make_speech.py [--models .models]
Writes tests/data/questions/qNN.wav, tests/data/interruption.wav and the bundled
appliance/data/question.wav (the question `appliance run` answers on a box without
a sound card).
"""

from __future__ import annotations

import argparse
import asyncio
import tomllib
from pathlib import Path

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample
from appliance.audio.wav import write_wav
from appliance.models.manifest import load_manifest
from appliance.models.store import ModelStore
from appliance.providers.compute import ComputeBudget
from appliance.providers.registry import build_tts

HERE = Path(__file__).resolve().parent


async def speak(tts_text: str, tts: object) -> AudioChunk:
    chunks = [c async for c in tts.synthesize(tts_text)]  # type: ignore[attr-defined]
    audio = AudioChunk(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)
    return resample(audio, ENGINE_RATE)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, default=Path(".models"))
    args = parser.parse_args()
    data = tomllib.loads((HERE / "questions.toml").read_text())
    store = ModelStore(args.models, load_manifest())
    tts = build_tts("local/piper-joe-medium", store, ComputeBudget.for_cores(), speed=0.95)
    out = HERE / "questions"
    out.mkdir(exist_ok=True)
    for index, question in enumerate(data["questions"], start=1):
        write_wav(out / f"q{index:02d}.wav", await speak(question, tts))
    write_wav(HERE / "interruption.wav", await speak(data["interruption"], tts))
    bundled = HERE.parents[1] / "appliance" / "data" / "question.wav"
    write_wav(bundled, await speak(data["questions"][0], tts))
    await tts.aclose()


if __name__ == "__main__":
    asyncio.run(main())
