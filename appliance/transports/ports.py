"""What a transport talks to: a conversation, the other end of an intercom, or nothing.

A transport (the device's microphone and speaker, a LiveKit room) moves audio
between the outside and one port: frames it hears go to `feed`, what it plays
comes from `pull`. Moving a conversation between the device and a room is then
only a matter of which transport holds the session's port. Everything here is
16 kHz mono int16, like the rest of the engine.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.emitter import Emitter
from appliance.voice.session import VoiceSession


class AudioPort(Protocol):
    stop_listeners: Emitter[[]]
    """Called when what was pulled ahead must not be played (a barge-in): drop your buffer."""

    async def feed(self, frame: Int16Array) -> None:
        """A frame heard by the transport."""

    def pull(self, count: int, ahead: float) -> Int16Array:
        """The next `count` samples to play; the transport plays them `ahead` seconds from now."""


class SessionPort:
    """A voice session as a transport sees it."""

    def __init__(self, session: VoiceSession) -> None:
        self.session = session
        self.stop_listeners = session.output.on_stop

    async def feed(self, frame: Int16Array) -> None:
        await self.session.feed(frame)

    def pull(self, count: int, ahead: float) -> Int16Array:
        return self.session.output.pull(count, self.session.now + ahead)


class AudioPipe:
    """A bounded FIFO between two transports with their own clocks.

    When the reader is slower the oldest audio goes (latency stays bounded);
    when it is faster it reads silence.
    """

    def __init__(self, max_s: float = 0.3, rate: int = ENGINE_RATE) -> None:
        self._blocks: deque[Int16Array] = deque()
        self._samples = 0
        self._rate = rate
        self._limit = round(max_s * rate)

    @property
    def queued_samples(self) -> int:
        return self._samples

    @property
    def queued_s(self) -> float:
        return self._samples / self._rate

    def write(self, samples: Int16Array) -> None:
        self._blocks.append(samples)
        self._samples += len(samples)
        while self._samples > self._limit and self._blocks:
            self._samples -= len(self._blocks.popleft())

    def read(self, count: int) -> Int16Array:
        out = np.zeros(count, dtype=np.int16)
        filled = 0
        while filled < count and self._blocks:
            block = self._blocks[0]
            n = min(count - filled, len(block))
            out[filled : filled + n] = block[:n]
            filled += n
            if n == len(block):
                self._blocks.popleft()
            else:
                self._blocks[0] = block[n:]
        self._samples -= filled
        return out

    def clear(self) -> None:
        self._blocks.clear()
        self._samples = 0


class PipeEnd:
    """One end of an intercom: what it hears goes down one pipe, what it plays comes up the other."""

    def __init__(self, outbound: AudioPipe, inbound: AudioPipe) -> None:
        self.outbound = outbound
        self.inbound = inbound
        self.stop_listeners: Emitter[[]] = Emitter("stop")

    async def feed(self, frame: Int16Array) -> None:
        self.outbound.write(frame)

    def pull(self, count: int, ahead: float) -> Int16Array:
        return self.inbound.read(count)


class Intercom:
    """The device's microphone and speaker bridged to a room (an operator took over)."""

    def __init__(self) -> None:
        to_room, to_device = AudioPipe(), AudioPipe()
        self.device_end = PipeEnd(outbound=to_room, inbound=to_device)
        self.room_end = PipeEnd(outbound=to_device, inbound=to_room)

    def clear(self) -> None:
        self.device_end.outbound.clear()
        self.device_end.inbound.clear()


class Announcement:
    """Plays fixed audio once and hears nothing (a 'busy' line to a caller we cannot serve)."""

    def __init__(self, samples: Int16Array) -> None:
        self._pipe = AudioPipe(max_s=len(samples) / ENGINE_RATE + 1)
        self._pipe.write(samples)
        self.stop_listeners: Emitter[[]] = Emitter("stop")

    async def feed(self, frame: Int16Array) -> None:
        return None

    def pull(self, count: int, ahead: float) -> Int16Array:
        return self._pipe.read(count)
