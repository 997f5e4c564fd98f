"""Client audio in any PCM format a Wyoming client may send, to the engine's 16 kHz mono int16.

Home Assistant sends 16 kHz mono 16-bit, but a satellite or a script may send 44.1 kHz stereo or 8-bit
audio: each stream is converted here, at the edge, with the stream resampler (soxr), never interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.audio.resample import StreamResampler

WIDTHS = (1, 2, 4)
"""Sample widths taken, in bytes: 8-bit unsigned, 16-bit and 32-bit signed little-endian (Wyoming's PCM)."""
MIN_RATE, MAX_RATE = 4000, 192_000
MAX_CHANNELS = 8


class AudioFormatError(ValueError):
    """Audio the services cannot take (one line, sent back as `error`)."""


@dataclass(frozen=True)
class PcmFormat:
    rate: int
    width: int
    channels: int

    @classmethod
    def of(cls, data: dict[str, Any]) -> PcmFormat:
        """The format an audio-start or audio-chunk event declares, checked."""
        values = {key: data.get(key) for key in ("rate", "width", "channels")}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise AudioFormatError(f"audio needs an integer '{key}', got {value!r}")
        pcm = cls(**values)  # type: ignore[arg-type]
        if not MIN_RATE <= pcm.rate <= MAX_RATE:
            raise AudioFormatError(f"audio rate {pcm.rate} Hz is outside {MIN_RATE}-{MAX_RATE}")
        if pcm.width not in WIDTHS:
            raise AudioFormatError(f"audio width {pcm.width} bytes is not one of {WIDTHS}")
        if not 1 <= pcm.channels <= MAX_CHANNELS:
            raise AudioFormatError(f"audio with {pcm.channels} channels (1-{MAX_CHANNELS} taken)")
        return pcm

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


class AudioIn:
    """One stream's conversion; keeps the resampler's state between chunks so the joins are seamless."""

    def __init__(self, pcm: PcmFormat) -> None:
        self.pcm = pcm
        self._resampler = StreamResampler(pcm.rate, ENGINE_RATE)
        self.seconds_in = 0.0
        """Client audio received so far, in seconds of its own timeline."""

    def convert(self, pcm: PcmFormat, audio: bytes) -> Int16Array:
        if pcm != self.pcm:
            raise AudioFormatError(f"an audio chunk in {_name(pcm)} within a stream that started in {_name(self.pcm)}")
        if len(audio) % pcm.frame_bytes:
            raise AudioFormatError(
                f"an audio chunk of {len(audio)} bytes is not whole {pcm.width}-byte samples on {pcm.channels} channels"
            )
        self.seconds_in += len(audio) / pcm.frame_bytes / pcm.rate
        return self._resampler.push(_mono_int16(audio, pcm))

    def flush(self) -> Int16Array:
        """What the resampler still holds at the end of the stream."""
        return self._resampler.push(np.zeros(0, dtype=np.int16), last=True)


def _mono_int16(audio: bytes, pcm: PcmFormat) -> Int16Array:
    if pcm.width == 1:
        samples = (np.frombuffer(audio, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif pcm.width == 2:
        samples = np.frombuffer(audio, dtype="<i2").astype(np.int32)
    else:
        samples = np.frombuffer(audio, dtype="<i4").astype(np.int64) >> 16
    if pcm.channels > 1:
        samples = samples.reshape(-1, pcm.channels).mean(axis=1)
    mono: Int16Array = np.clip(samples, -32768, 32767).astype(np.int16)
    return mono


def _name(pcm: PcmFormat) -> str:
    return f"{pcm.rate} Hz/{8 * pcm.width}-bit/{pcm.channels} ch"
