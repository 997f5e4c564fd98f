"""A recorded conversation through the whole voice pipeline.

The input wav is converted to 16 kHz at this edge and fed frame by frame, at
real-time pace or, with `fast`, as quickly as the pipeline allows. The output
is written on the same timeline: for every input frame, the same stretch of
the agent's voice (or silence) is pulled from the playback queue, exactly as a
sound card would. So barge-in and voice-to-voice latency are real here too.

In fast mode the input waits whenever the agent is computing (thinking, or
speaking with nothing buffered), so compute takes no audio time: the timeline
shows turn-taking decisions, not machine speed. Use real-time pace to measure
latency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk, Int16Array
from appliance.audio.resample import resample
from appliance.voice.session import VoiceSession

TAIL_LIMIT_S = 60.0
"""After the input ends, keep the timeline running this long at most for the last reply."""


@dataclass
class FileRunResult:
    output: AudioChunk
    input_seconds: float


class FileTransport:
    def __init__(self, session: VoiceSession, *, realtime: bool = True) -> None:
        self.session = session
        self.realtime = realtime
        self._frame = session.providers.vad.frame_samples
        self._out_rate = session.output.sample_rate

    async def run(self, audio: AudioChunk) -> FileRunResult:
        samples = resample(audio, ENGINE_RATE).samples
        padded = len(samples) + (-len(samples)) % self._frame
        frames = np.zeros(padded, dtype=np.int16)
        frames[: len(samples)] = samples
        out: list[Int16Array] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        position = 0
        out_samples = 0

        async def step(frame: Int16Array) -> None:
            nonlocal position, out_samples
            if self.realtime:
                delay = started + position / ENGINE_RATE - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await self.session.wait_ready()
            at = position / ENGINE_RATE
            position += len(frame)
            want = round(position * self._out_rate / ENGINE_RATE) - out_samples
            out.append(self.session.output.pull(want, at))
            out_samples += want
            await self.session.feed(frame)

        for index in range(0, padded, self._frame):
            await step(frames[index : index + self._frame])
        silence = np.zeros(self._frame, dtype=np.int16)
        tail_end = padded + int(TAIL_LIMIT_S * ENGINE_RATE)
        while not self.session.idle and position < tail_end:
            await step(silence)
        output = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
        return FileRunResult(AudioChunk(output, self._out_rate), input_seconds=len(samples) / ENGINE_RATE)
