"""A request answered somewhere else: the session hands the heard utterance to another pipeline (Home
Assistant's, with the device as its satellite) and plays the spoken answer it gets back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from appliance.audio.frames import AudioChunk, Int16Array
from appliance.voice.turn_record import TurnRecord


class RemotePipeline(Protocol):
    async def answer(self, audio: Int16Array, play: Callable[[AudioChunk], None], record: TurnRecord) -> bool:
        """Answer the request in `audio` (16 kHz mono), playing the answer through `play` and filling in the
        record's texts; False when this device should answer itself (the other pipeline is not there, or
        did not answer in time)."""
        ...


def joined(frames: list[Int16Array]) -> Int16Array:
    """A turn's frames as one utterance."""
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
