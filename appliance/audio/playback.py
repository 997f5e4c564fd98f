"""The agent's voice on its way out: a queue the output's clock pulls from.

Whatever drives the output (a sound card callback, a file writer's timeline, a
LiveKit track) pulls a block of samples per period. The queue answers with the
agent's audio or silence, and tells a listener, on the audio timeline, when an
utterance became audible, when each piece started, and when it drained.
Pausing emits silence without losing the position, so a false interruption
can resume where it stopped; clearing drops everything (a real barge-in).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from appliance.audio.frames import AudioChunk, Int16Array
from appliance.audio.resample import resample
from appliance.emitter import Emitter

AUDIBLE_LEVEL = 330
"""|sample| above this (about -40 dBFS) counts as audible."""


class PlaybackListener(Protocol):
    def on_piece_started(self, utterance: int, piece: int, at: float) -> None: ...
    def on_audible(self, utterance: int, at: float) -> None: ...
    def on_drained(self, utterance: int, at: float) -> None: ...


@dataclass
class _Piece:
    samples: Int16Array
    utterance: int
    piece: int
    offset: int = 0


class PlaybackQueue:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.listener: PlaybackListener | None = None
        self.on_stop: Emitter[[]] = Emitter("stop")
        """Called on pause and clear, so an output that buffers ahead can drop what it buffered."""
        self.paused = False
        self.volume = 1.0
        """Gain (0-1) applied to what is queued from now on."""
        self._pieces: deque[_Piece] = deque()
        self._audible_seen: set[int] = set()
        self._ended = False

    def play(self, chunk: AudioChunk, utterance: int, piece: int = 0) -> None:
        """Queue audio (any rate; converted here, at the edge)."""
        if self._ended:
            return
        converted = resample(chunk, self.sample_rate)
        samples = converted.samples
        if self.volume != 1.0:
            samples = (samples.astype(np.float32) * self.volume).astype(np.int16)
        if len(samples):
            self._pieces.append(_Piece(samples, utterance, piece))

    @property
    def queued_samples(self) -> int:
        return sum(len(p.samples) - p.offset for p in self._pieces)

    def end_after_current(self) -> None:
        """A clean stop: what is playing now finishes; everything after it, queued or still to come, is
        dropped. One way: the queue takes nothing more."""
        self._pieces = deque(list(self._pieces)[:1])
        self._ended = True

    def has_audio_for(self, utterance: int) -> bool:
        return any(p.utterance == utterance for p in self._pieces)

    def pause(self) -> None:
        self.paused = True
        self.on_stop.emit()

    def resume(self) -> None:
        self.paused = False

    def clear(self) -> None:
        """Drop everything queued (a confirmed interruption)."""
        self._pieces.clear()
        self.paused = False
        self.on_stop.emit()

    def pull(self, count: int, at: float) -> Int16Array:
        """The next `count` samples, which the output plays starting at audio time `at`."""
        out = np.zeros(count, dtype=np.int16)
        if self.paused:
            return out
        filled = 0
        while filled < count and self._pieces:
            piece = self._pieces[0]
            start_time = at + filled / self.sample_rate
            if piece.offset == 0 and self.listener:
                self.listener.on_piece_started(piece.utterance, piece.piece, start_time)
            take = min(count - filled, len(piece.samples) - piece.offset)
            block = piece.samples[piece.offset : piece.offset + take]
            out[filled : filled + take] = block
            if piece.utterance not in self._audible_seen:
                loud = np.flatnonzero(np.abs(block.astype(np.int32)) > AUDIBLE_LEVEL)
                if len(loud):
                    self._audible_seen.add(piece.utterance)
                    if self.listener:
                        self.listener.on_audible(piece.utterance, start_time + loud[0] / self.sample_rate)
            piece.offset += take
            filled += take
            if piece.offset >= len(piece.samples):
                self._pieces.popleft()
                if self.listener and not self.has_audio_for(piece.utterance):
                    self.listener.on_drained(piece.utterance, at + filled / self.sample_rate)
        return out
