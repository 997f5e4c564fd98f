"""Sample-rate conversion at the edges, with soxr (never linear interpolation)."""

from __future__ import annotations

import numpy as np
import soxr

from appliance.audio.frames import AudioChunk, Int16Array


def resample(chunk: AudioChunk, rate: int) -> AudioChunk:
    """Convert a whole chunk to `rate` (a no-op when it already is)."""
    if chunk.sample_rate == rate or len(chunk) == 0:
        return AudioChunk(chunk.samples, rate) if len(chunk) == 0 else chunk
    out = soxr.resample(chunk.samples, chunk.sample_rate, rate, quality="HQ")
    return AudioChunk(np.asarray(out, dtype=np.int16), rate)


class StreamResampler:
    """Resamples a stream block by block, keeping filter state between blocks.

    Resampling each block on its own would click at every boundary; a stream
    resampler carries the filter history so the output is seamless.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        )

    def push(self, samples: Int16Array, last: bool = False) -> Int16Array:
        if self._stream is None:
            return samples
        return np.asarray(self._stream.resample_chunk(samples, last=last), dtype=np.int16)
