"""Bench measures of listening: idle CPU with VAD only, and how fast barge-in silences the agent."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from appliance.app import Appliance
from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.playback import AUDIBLE_LEVEL
from appliance.audio.resample import resample
from appliance.audio.wav import read_wav
from appliance.transports.file import FileTransport
from appliance.voice.state import SessionState

SILENT_FOR_S = 0.4
"""The agent counts as stopped once its audio stays silent this long (words have short gaps)."""


async def idle_cpu_percent(appliance: Appliance, seconds: float = 10.0) -> float:
    """CPU (% of one core) while listening to silence at real-time pace: VAD only."""
    session = appliance.new_session(ENGINE_RATE)
    transport = FileTransport(session, realtime=True)
    await transport.feed(AudioChunk.silence(0.5))  # settle
    wall, cpu = time.monotonic(), time.process_time()
    await transport.feed(AudioChunk.silence(seconds))
    percent = 100.0 * (time.process_time() - cpu) / (time.monotonic() - wall)
    await session.aclose()
    return percent


async def barge_in_reactions_ms(
    appliance: Appliance, question: Path, interruption: Path, trials: int = 3
) -> list[float]:
    """From the start of the user's voice over the agent to the agent's audio stopping, per trial."""
    said = resample(read_wav(interruption), ENGINE_RATE)
    loud = np.flatnonzero(np.abs(said.samples.astype(np.int32)) > AUDIBLE_LEVEL)
    voice_offset = float(loud[0]) / ENGINE_RATE if len(loud) else 0.0
    reactions: list[float] = []
    for _ in range(trials):
        session = appliance.new_session(ENGINE_RATE)
        transport = FileTransport(session, realtime=True)
        await transport.feed(AudioChunk.silence(0.5))
        await transport.feed(read_wav(question))
        silence = np.zeros(transport.frame_samples, dtype=np.int16)
        waited = 0.0
        while session.state is not SessionState.SPEAKING and waited < 15.0:
            await transport.step(silence)
            waited += transport.frame_samples / ENGINE_RATE
        for _ in range(round(0.5 * ENGINE_RATE / transport.frame_samples)):  # half a second into the reply
            await transport.step(silence)
        onset = transport.position_s + voice_offset
        await transport.feed(said)
        await transport.drain(extra_s=1.0)
        await session.aclose()
        stopped = _silent_from(transport.output(), onset)
        if stopped is not None:
            reactions.append(1000.0 * (stopped - onset))
    return reactions


def _silent_from(audio: AudioChunk, start: float) -> float | None:
    """The first time at or after `start` from which the audio stays silent for SILENT_FOR_S."""
    samples = np.abs(audio.samples.astype(np.int32)) > AUDIBLE_LEVEL
    begin = int(start * audio.sample_rate)
    loud = np.flatnonzero(samples[begin:])
    window = int(SILENT_FOR_S * audio.sample_rate)
    previous = 0
    for index in loud.tolist():
        if index - previous >= window:
            return start + previous / audio.sample_rate
        previous = index + 1
    tail = len(samples) - begin
    return start + previous / audio.sample_rate if tail - previous >= window else None
