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

from appliance.audio.echo import EchoCanceller
from appliance.audio.frames import ENGINE_RATE, AudioChunk, FrameSplitter, Int16Array
from appliance.audio.resample import resample
from appliance.audio.room import RoomEcho, mix
from appliance.transports.ports import SessionPort
from appliance.voice.session import VoiceSession

TAIL_LIMIT_S = 60.0
"""After the input ends, keep the timeline running this long at most for the last reply."""


@dataclass
class FileRunResult:
    output: AudioChunk
    input_seconds: float


class FileTransport:
    def __init__(
        self,
        session: VoiceSession,
        *,
        realtime: bool = True,
        room: RoomEcho | None = None,
        echo_canceller: EchoCanceller | None = None,
    ) -> None:
        """`room` mixes the agent's own voice back into the input, as a speaker in a room would;
        `echo_canceller` cleans the input using what was played, as on the device path."""
        self.session = session
        self.port = SessionPort(session)
        """The same seam the device and room transports use. Nothing is pulled ahead here (each input
        frame pulls exactly its own stretch), so a barge-in has no buffer to drop."""
        self.realtime = realtime
        self.room = room
        self.echo_canceller = echo_canceller
        if (room or echo_canceller) and session.output.sample_rate != ENGINE_RATE:
            raise ValueError("echo simulation needs a 16 kHz output")
        self._splitter = FrameSplitter(session.providers.vad.frame_samples)
        self.frame_samples = session.providers.vad.frame_samples
        self._out_rate = session.output.sample_rate
        self._out: list[Int16Array] = []
        self._position = 0
        self._out_samples = 0
        self._started: float | None = None

    @property
    def position_s(self) -> float:
        return self._position / ENGINE_RATE

    async def step(self, frame: Int16Array) -> None:
        """One input frame in, the same stretch of output pulled."""
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop.time()
        if self.realtime:
            delay = self._started + self._position / ENGINE_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await self.session.wait_ready()
        self._position += len(frame)
        want = round(self._position * self._out_rate / ENGINE_RATE) - self._out_samples
        played = self.port.pull(want, 0.0)  # what plays while this frame is heard
        self._out.append(played)
        self._out_samples += want
        if self.room is None and self.echo_canceller is None:
            await self.port.feed(frame)
            return
        mic = mix(frame, self.room.through(played)) if self.room else frame
        if self.echo_canceller is not None:
            self.echo_canceller.far(played)
            mic = self.echo_canceller.near(mic)
        for piece in self._splitter.push(mic):
            await self.port.feed(piece)

    async def feed(self, audio: AudioChunk) -> None:
        """Feed a whole chunk (any rate), padded with silence to whole frames."""
        samples = resample(audio, ENGINE_RATE).samples
        padded = np.zeros(len(samples) + (-len(samples)) % self.frame_samples, dtype=np.int16)
        padded[: len(samples)] = samples
        for index in range(0, len(padded), self.frame_samples):
            await self.step(padded[index : index + self.frame_samples])

    async def drain(self, limit_s: float = TAIL_LIMIT_S, extra_s: float = 0.0) -> None:
        """Feed silence until the session has nothing in progress (the last reply has played)."""
        silence = np.zeros(self.frame_samples, dtype=np.int16)
        end = self._position + int(limit_s * ENGINE_RATE)
        while not self.session.idle and self._position < end:
            await self.step(silence)
        for _ in range(round(extra_s * ENGINE_RATE / self.frame_samples)):
            await self.step(silence)

    def output(self) -> AudioChunk:
        samples = np.concatenate(self._out) if self._out else np.zeros(0, dtype=np.int16)
        return AudioChunk(samples, self._out_rate)

    async def run(self, audio: AudioChunk) -> FileRunResult:
        """Feed the whole input, then let the last reply play out; the output starts at the input's start."""
        await self.feed(audio)
        input_seconds = audio.duration
        padded_end = self._position
        await self.drain()
        output = self.output()
        if self._position == padded_end:  # no reply ran past the input: same length as the input
            output = AudioChunk(output.samples[: round(input_seconds * self._out_rate)], self._out_rate)
        return FileRunResult(output, input_seconds)
