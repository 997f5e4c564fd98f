"""Regenerate the held-out speech-to-text set (tests/data/stt/*.wav) from stt.toml.

Usage: python tests/data/make_stt_set.py [--models .models]
Voices: Piper joe (the packaged voice) slow and fast, and espeak-ng (apt package
espeak-ng) with American and Scottish English: different synthesizers, accents
and speeds, so the measure is not tuned to one voice. 16 kHz mono wavs named
sNN-VOICE.wav; the bench reads the sentence back from NN.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample
from appliance.audio.wav import read_wav, write_wav
from appliance.models.manifest import load_manifest
from appliance.models.store import ModelStore
from appliance.providers.compute import ComputeBudget
from appliance.providers.registry import build_tts

HERE = Path(__file__).resolve().parent
PIPER_SPEEDS = {"joe-slow": 0.8, "joe-fast": 1.25}
ESPEAK_VOICES = {"espeak-us": "en-us", "espeak-scotland": "en-gb-scotland"}


async def piper(text: str, tts: object) -> AudioChunk:
    chunks = [c async for c in tts.synthesize(text)]  # type: ignore[attr-defined]
    return resample(AudioChunk(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate), ENGINE_RATE)


def espeak(text: str, voice: str) -> AudioChunk:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(wav), text], check=True)
        return resample(read_wav(wav), ENGINE_RATE)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, default=Path(".models"))
    args = parser.parse_args()
    sentences = tomllib.loads((HERE / "stt.toml").read_text())["sentences"]
    store = ModelStore(args.models, load_manifest())
    out = HERE / "stt"
    out.mkdir(exist_ok=True)
    for name, speed in PIPER_SPEEDS.items():
        tts = build_tts("local/piper-joe-medium", store, ComputeBudget.for_cores(), speed=speed)
        for index, sentence in enumerate(sentences, start=1):
            write_wav(out / f"s{index:02d}-{name}.wav", await piper(sentence, tts))
        await tts.aclose()
    for name, voice in ESPEAK_VOICES.items():
        for index, sentence in enumerate(sentences, start=1):
            write_wav(out / f"s{index:02d}-{name}.wav", espeak(sentence, voice))


if __name__ == "__main__":
    asyncio.run(main())
