"""Frames: fixed-size frame splitting and float -> int16 conversion."""

from __future__ import annotations

import numpy as np

from appliance.audio.frames import AudioChunk, FrameSplitter, rms_dbfs, to_int16


def _ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int16)


def test_frame_splitter_holds_a_short_push() -> None:
    splitter = FrameSplitter(4)
    assert splitter.push(_ints(1, 2, 3)) == []


def test_frame_splitter_keeps_the_remainder_for_the_next_push() -> None:
    splitter = FrameSplitter(4)
    splitter.push(_ints(1, 2, 3))
    frames = splitter.push(_ints(4, 5, 6))
    assert [f.tolist() for f in frames] == [[1, 2, 3, 4]]
    frames = splitter.push(_ints(7, 8, 9, 10, 11, 12))
    assert [f.tolist() for f in frames] == [[5, 6, 7, 8], [9, 10, 11, 12]]


def test_frame_splitter_cuts_a_long_push_into_several_frames() -> None:
    splitter = FrameSplitter(3)
    frames = splitter.push(np.arange(1, 11, dtype=np.int16))
    assert [f.tolist() for f in frames] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert splitter.flush().tolist() == [10, 0, 0]


def test_frame_splitter_flush_zero_pads_the_last_frame() -> None:
    splitter = FrameSplitter(4)
    splitter.push(_ints(7, 8, 9))
    frame = splitter.flush()
    assert frame is not None
    assert frame.dtype == np.int16
    assert frame.tolist() == [7, 8, 9, 0]


def test_frame_splitter_flush_with_nothing_pending_is_none() -> None:
    splitter = FrameSplitter(4)
    splitter.push(_ints(1, 2, 3, 4))
    assert splitter.flush() is None


def test_frame_splitter_flush_empties_the_pending_samples() -> None:
    splitter = FrameSplitter(4)
    splitter.push(_ints(1, 2))
    splitter.flush()
    assert splitter.flush() is None
    assert [f.tolist() for f in splitter.push(_ints(5, 6, 7, 8))] == [[5, 6, 7, 8]]


def test_to_int16_clips_out_of_range_floats() -> None:
    out = to_int16(np.array([1.5, -2.0, 1.0, -1.0, 0.5, 0.0]))
    assert out.dtype == np.int16
    assert out.tolist() == [32767, -32768, 32767, -32768, 16384, 0]


def test_to_int16_passes_int16_through() -> None:
    samples = _ints(-32768, 0, 32767)
    np.testing.assert_array_equal(to_int16(samples), samples)


def test_silence_has_the_requested_duration() -> None:
    chunk = AudioChunk.silence(0.25)
    assert len(chunk) == 4000
    assert chunk.duration == 0.25
    assert not chunk.samples.any()


def test_rms_of_digital_silence_is_minus_infinity() -> None:
    assert rms_dbfs(np.zeros(100, dtype=np.int16)) == float("-inf")
