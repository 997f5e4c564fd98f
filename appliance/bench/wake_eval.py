"""How well the wake phrase is spotted: false accepts and misses on spoken test data.

Each command of tests/data/wake.toml is spoken with and without the wake phrase, by the Piper
voice and (when installed) by espeak-ng; the unrelated sentences must never wake the device.
Every utterance goes through the real STT and the real activation gate, as in a session.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample
from appliance.audio.wav import read_wav
from appliance.config import ActivationConfig
from appliance.providers.base import STT, TTS
from appliance.voice.activation import ActivationGate, ActivationMode

WAKE_DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "wake.toml"


@dataclass
class WakeReport:
    with_phrase: int = 0
    misses: list[str] = field(default_factory=list)
    without_phrase: int = 0
    false_accepts: list[str] = field(default_factory=list)
    unrelated_seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "with_phrase": self.with_phrase,
            "misses": len(self.misses),
            "without_phrase": self.without_phrase,
            "false_accepts": len(self.false_accepts),
            "unrelated_speech_s": round(self.unrelated_seconds, 1),
            "missed": self.misses,
            "falsely_accepted": self.false_accepts,
        }


def espeak(text: str) -> AudioChunk | None:
    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        subprocess.run(["espeak-ng", "-v", "en-us+m3", "-s", "155", "-w", out.name, text], check=True)
        return resample(read_wav(out.name), ENGINE_RATE)


async def piper(tts: TTS, text: str) -> AudioChunk:
    chunks = [c async for c in tts.synthesize(text)]
    return resample(AudioChunk(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate), ENGINE_RATE)


async def evaluate_wake(stt: STT, tts: TTS, data_path: Path = WAKE_DATA) -> WakeReport:
    data = tomllib.loads(data_path.read_text())
    phrase = data["wake_phrase"]
    gate = ActivationGate(ActivationConfig(mode=ActivationMode.WAKE, wake_phrase=phrase))
    report = WakeReport()

    async def voices(text: str) -> list[tuple[str, AudioChunk]]:
        spoken = [("piper", await piper(tts, text))]
        other = espeak(text)
        if other is not None:
            spoken.append(("espeak", other))
        return spoken

    async def wakes(audio: AudioChunk) -> tuple[bool, str]:
        heard = (await stt.transcribe(audio.samples, prompt=gate.stt_prompt)).text
        return gate.admit(heard, now=0.0).woke, heard

    for command in data["commands"]:
        for voice, audio in await voices(f"{phrase}, {command}"):
            report.with_phrase += 1
            woke, heard = await wakes(audio)
            if not woke:
                report.misses.append(f"{voice}: {heard!r}")
        for voice, audio in await voices(command):
            report.without_phrase += 1
            woke, heard = await wakes(audio)
            if woke:
                report.false_accepts.append(f"{voice}: {heard!r}")
    for sentence in data["unrelated"]:
        for voice, audio in await voices(sentence):
            report.without_phrase += 1
            report.unrelated_seconds += audio.duration
            woke, heard = await wakes(audio)
            if woke:
                report.false_accepts.append(f"{voice}: {heard!r}")
    return report
