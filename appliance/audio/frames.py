"""Audio chunks: the one unit of audio that moves through the appliance.

Inside the engine audio is 16 kHz mono int16; other rates exist only at the edges
(device, file, TTS output) and are converted there with a real resampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ENGINE_RATE = 16_000
"""Sample rate of every frame inside the engine."""

Int16Array = npt.NDArray[np.int16]


@dataclass(frozen=True)
class AudioChunk:
    """Mono int16 samples at a known rate."""

    samples: Int16Array
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def __len__(self) -> int:
        return len(self.samples)

    @staticmethod
    def silence(seconds: float, sample_rate: int = ENGINE_RATE) -> AudioChunk:
        return AudioChunk(np.zeros(round(seconds * sample_rate), dtype=np.int16), sample_rate)


def to_float32(samples: Int16Array) -> npt.NDArray[np.float32]:
    """int16 -> float32 in [-1, 1), as the neural engines want it."""
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def to_int16(samples: npt.NDArray[np.floating] | npt.NDArray[np.int16]) -> Int16Array:
    """float in [-1, 1] -> int16 with clipping; int16 passes through."""
    if samples.dtype == np.int16:
        return samples.astype(np.int16, copy=False)
    scaled = np.clip(np.asarray(samples, dtype=np.float64) * 32768.0, -32768, 32767)
    return scaled.astype(np.int16)


def rms_dbfs(samples: Int16Array) -> float:
    """Level of a block in dB relative to full scale (-inf for digital silence)."""
    if len(samples) == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return float("-inf") if rms == 0.0 else 20.0 * float(np.log10(rms / 32768.0))


class FrameSplitter:
    """Cuts a stream of arbitrary-sized chunks into fixed-size frames.

    Transports deliver whatever block size their source gives; VAD wants exactly
    `frame_samples` per call. The remainder is kept for the next push.
    """

    def __init__(self, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.int16)

    def push(self, samples: Int16Array) -> list[Int16Array]:
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        count = len(data) // self.frame_samples
        frames = [data[i * self.frame_samples : (i + 1) * self.frame_samples] for i in range(count)]
        self._pending = data[count * self.frame_samples :].copy()
        return frames

    def flush(self) -> Int16Array | None:
        """The last partial frame, zero-padded, or None if nothing is pending."""
        if len(self._pending) == 0:
            return None
        frame = np.zeros(self.frame_samples, dtype=np.int16)
        frame[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, dtype=np.int16)
        return frame
