"""A simulated room: the speaker's sound comes back into the microphone, later and quieter.

Used to test echo cancellation and barge-in without a sound card, and by `bench`.
A real room adds reverberation; a delayed, attenuated copy is the part that
matters most for an agent interrupting itself.
"""

from __future__ import annotations

import numpy as np

from appliance.audio.frames import Int16Array


class RoomEcho:
    def __init__(self, delay_ms: float = 40.0, gain: float = 0.5, sample_rate: int = 16_000) -> None:
        self.gain = gain
        self._line = np.zeros(round(delay_ms * sample_rate / 1000), dtype=np.int16)

    def through(self, played: Int16Array) -> Int16Array:
        """The echo that reaches the mic while `played` comes out of the speaker."""
        line = np.concatenate([self._line, played])
        echoed, self._line = line[: len(played)], line[len(played) :]
        return (echoed.astype(np.float64) * self.gain).astype(np.int16)


def mix(a: Int16Array, b: Int16Array) -> Int16Array:
    """Sum with clipping, as a microphone hears two sources at once."""
    return np.clip(a.astype(np.int32) + b.astype(np.int32), -32768, 32767).astype(np.int16)
