"""The echo canceller rests while the speaker is silent and cancels again the moment it plays.

Real speech (a recorded question) plays through a simulated room (60 ms later, at 60 %) into the
microphone, with a faint noise floor, in 32 ms blocks as the device transport delivers them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance.audio.echo import EchoCanceller
from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.audio.resample import resample
from appliance.audio.room import RoomEcho, mix
from appliance.audio.wav import read_wav

SPEECH = Path(__file__).resolve().parents[1] / "data" / "questions" / "q01.wav"
BLOCK = 512


class Room:
    """A speaker and a microphone: what is played comes back as echo, over a faint noise floor."""

    def __init__(self, canceller: EchoCanceller) -> None:
        self.canceller = canceller
        self.echo = RoomEcho(delay_ms=60, gain=0.6)
        self.noise = np.random.default_rng(7)

    def run(self, played: Int16Array) -> tuple[Int16Array, Int16Array]:
        """Play `played` block by block; returns (what the mic heard, what the canceller gave out)."""
        heard, cleaned = [], []
        for start in range(0, len(played), BLOCK):
            block = played[start : start + BLOCK]
            self.canceller.far(block)
            mic = mix(self.echo.through(block), self.noise.normal(0, 20, len(block)).astype(np.int16))
            heard.append(mic)
            cleaned.append(self.canceller.near(mic))
        return np.concatenate(heard), np.concatenate(cleaned)


def speech() -> Int16Array:
    return resample(read_wav(SPEECH), ENGINE_RATE).samples


def silence(seconds: float) -> Int16Array:
    return np.zeros(round(seconds * ENGINE_RATE), dtype=np.int16)


def energy(samples: Int16Array) -> float:
    return float(np.mean(np.square(samples.astype(np.float64))))


def test_it_does_no_work_once_the_speaker_has_been_silent_longer_than_the_tail() -> None:
    room = Room(EchoCanceller(tail_s=0.5))
    room.run(speech())
    room.run(silence(0.6))  # the tail: echo may still ring
    assert room.canceller.idle
    worked = room.canceller.frames_processed
    heard, cleaned = room.run(silence(3.0))
    assert room.canceller.frames_processed == worked
    assert len(cleaned) == len(heard)
    assert np.array_equal(cleaned[BLOCK:], heard[BLOCK:])  # passed through untouched (after what was framed)


def test_it_keeps_cancelling_through_the_tail() -> None:
    room = Room(EchoCanceller(tail_s=0.5))
    room.run(speech())
    worked = room.canceller.frames_processed
    room.run(silence(0.4))
    assert not room.canceller.idle
    assert room.canceller.frames_processed - worked == 2 * 40  # both directions, every 10 ms


def test_it_cancels_again_from_the_first_sound_after_resting() -> None:
    room = Room(EchoCanceller(tail_s=0.5))
    room.run(speech())  # it learns the room
    room.run(silence(3.0))
    assert room.canceller.idle
    heard, cleaned = room.run(speech())
    assert not room.canceller.idle
    echo_removed_db = 10 * np.log10(energy(heard) / energy(cleaned))
    assert echo_removed_db > 20, echo_removed_db


def test_the_output_stays_in_step_with_the_input_across_rest_and_wake() -> None:
    room = Room(EchoCanceller(tail_s=0.3))
    total_in = total_out = 0
    for played in (speech()[:8000], silence(1.0), speech()[:8000], silence(1.0)):
        heard, cleaned = room.run(played)
        total_in, total_out = total_in + len(heard), total_out + len(cleaned)
        assert total_in - total_out < ENGINE_RATE // 100  # never more than one 10 ms frame held back
