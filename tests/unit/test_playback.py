"""PlaybackQueue: the agent's audio pulled by the output clock, with listener events on the audio timeline."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.frames import AudioChunk
from appliance.audio.playback import AUDIBLE_LEVEL, PlaybackQueue

RATE = 16000


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_piece_started(self, utterance: int, piece: int, at: float) -> None:
        self.events.append(("started", utterance, piece, at))

    def on_audible(self, utterance: int, at: float) -> None:
        self.events.append(("audible", utterance, at))

    def on_drained(self, utterance: int, at: float) -> None:
        self.events.append(("drained", utterance, at))

    def of(self, kind: str) -> list[tuple]:
        return [e[1:] for e in self.events if e[0] == kind]


def _ramp(start: int, count: int) -> AudioChunk:
    return AudioChunk(np.arange(start, start + count, dtype=np.int16), RATE)


def _queue() -> tuple[PlaybackQueue, _Recorder]:
    queue = PlaybackQueue(RATE)
    recorder = _Recorder()
    queue.listener = recorder
    return queue, recorder


def _pull_all(queue: PlaybackQueue, total: int, block: int, at: float = 0.0) -> np.ndarray:
    out = [queue.pull(block, at + i / RATE) for i in range(0, total, block)]
    return np.concatenate(out)


def test_pull_returns_the_queued_audio() -> None:
    queue = PlaybackQueue(RATE)
    queue.play(_ramp(1, 100), utterance=1)
    np.testing.assert_array_equal(queue.pull(60, 0.0), np.arange(1, 61))
    np.testing.assert_array_equal(queue.pull(40, 60 / RATE), np.arange(61, 101))


def test_pull_fills_with_zeros_after_the_queued_audio() -> None:
    queue = PlaybackQueue(RATE)
    queue.play(_ramp(1, 100), utterance=1)
    out = queue.pull(150, 0.0)
    np.testing.assert_array_equal(out[:100], np.arange(1, 101))
    assert not out[100:].any()
    assert len(out) == 150
    assert out.dtype == np.int16


def test_pull_on_an_empty_queue_returns_zeros() -> None:
    out = PlaybackQueue(RATE).pull(320, 0.0)
    assert len(out) == 320
    assert not out.any()


def test_pull_runs_pieces_back_to_back() -> None:
    queue = PlaybackQueue(RATE)
    queue.play(_ramp(1, 50), utterance=1, piece=0)
    queue.play(_ramp(51, 50), utterance=1, piece=1)
    np.testing.assert_array_equal(queue.pull(100, 0.0), np.arange(1, 101))


def test_play_resamples_to_the_queue_rate() -> None:
    queue = PlaybackQueue(RATE)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.int16)
    queue.play(AudioChunk(tone, 22050), utterance=1)
    assert abs(queue.queued_samples - RATE) <= 4


def test_paused_pull_returns_zeros() -> None:
    queue = PlaybackQueue(RATE)
    queue.play(_ramp(1, 100), utterance=1)
    queue.pause()
    assert not queue.pull(20, 0.0).any()


def test_pause_keeps_the_position() -> None:
    queue = PlaybackQueue(RATE)
    queue.play(_ramp(1, 100), utterance=1)
    queue.pull(30, 0.0)
    queue.pause()
    queue.pull(20, 30 / RATE)
    assert queue.queued_samples == 70
    queue.resume()
    np.testing.assert_array_equal(queue.pull(10, 50 / RATE), np.arange(31, 41))


def test_clear_drops_everything() -> None:
    queue = PlaybackQueue(RATE)
    queue.play(_ramp(1, 100), utterance=1)
    queue.play(_ramp(1, 100), utterance=2)
    queue.pull(30, 0.0)
    queue.clear()
    assert queue.queued_samples == 0
    assert not queue.has_audio_for(1)
    assert not queue.has_audio_for(2)
    assert not queue.pull(100, 30 / RATE).any()


def test_clear_ends_a_pause() -> None:
    queue = PlaybackQueue(RATE)
    queue.pause()
    queue.clear()
    queue.play(_ramp(1, 10), utterance=3)
    np.testing.assert_array_equal(queue.pull(10, 0.0), np.arange(1, 11))


def test_listener_hears_when_each_piece_starts() -> None:
    queue, recorder = _queue()
    queue.play(_ramp(1, 100), utterance=1, piece=0)
    queue.play(_ramp(1, 100), utterance=1, piece=1)
    queue.pull(150, 2.0)
    assert recorder.of("started") == [(1, 0, 2.0), (1, 1, pytest.approx(2.0 + 100 / RATE))]


def test_piece_started_is_reported_once_per_piece() -> None:
    queue, recorder = _queue()
    queue.play(_ramp(1, 100), utterance=1, piece=0)
    _pull_all(queue, 200, 16)
    assert recorder.of("started") == [(1, 0, 0.0)]


def test_audible_is_reported_at_the_first_loud_sample() -> None:
    queue, recorder = _queue()
    quiet = np.full(1600, 10, dtype=np.int16)  # 100 ms below AUDIBLE_LEVEL
    loud = np.full(1600, 5000, dtype=np.int16)
    queue.play(AudioChunk(np.concatenate([quiet, loud]), RATE), utterance=7)
    _pull_all(queue, 4096, 512, at=5.0)
    assert recorder.of("audible") == [(7, pytest.approx(5.1))]


def test_audible_counts_only_samples_above_the_level() -> None:
    queue, recorder = _queue()
    queue.play(AudioChunk(np.full(800, AUDIBLE_LEVEL, dtype=np.int16), RATE), utterance=1)
    queue.play(AudioChunk(np.array([-AUDIBLE_LEVEL - 1], dtype=np.int16), RATE), utterance=1, piece=1)
    queue.pull(1024, 0.0)
    assert recorder.of("audible") == [(1, pytest.approx(800 / RATE))]


def test_audible_is_reported_once_per_utterance() -> None:
    queue, recorder = _queue()
    queue.play(AudioChunk(np.full(600, 5000, dtype=np.int16), RATE), utterance=1, piece=0)
    queue.play(AudioChunk(np.full(600, 5000, dtype=np.int16), RATE), utterance=1, piece=1)
    _pull_all(queue, 1600, 256)
    assert len(recorder.of("audible")) == 1


def test_silent_utterance_is_never_audible() -> None:
    queue, recorder = _queue()
    queue.play(AudioChunk(np.full(800, 5, dtype=np.int16), RATE), utterance=1)
    _pull_all(queue, 1024, 256)
    assert recorder.of("audible") == []


def test_drained_is_reported_once_after_the_last_piece() -> None:
    queue, recorder = _queue()
    queue.play(_ramp(1, 300), utterance=1, piece=0)
    queue.play(_ramp(1, 300), utterance=1, piece=1)
    queue.play(_ramp(1, 100), utterance=2, piece=0)
    _pull_all(queue, 1024, 256, at=1.0)
    assert recorder.of("drained") == [
        (1, pytest.approx(1.0 + 600 / RATE)),
        (2, pytest.approx(1.0 + 700 / RATE)),
    ]


def test_drained_is_not_reported_while_a_piece_remains() -> None:
    queue, recorder = _queue()
    queue.play(_ramp(1, 300), utterance=1, piece=0)
    queue.play(_ramp(1, 300), utterance=1, piece=1)
    queue.pull(400, 0.0)
    assert recorder.of("drained") == []


def test_end_after_current_lets_the_playing_piece_finish_and_takes_nothing_more() -> None:
    queue, recorder = _queue()
    queue.play(_ramp(1, 100), utterance=1, piece=0)
    queue.play(_ramp(1, 100), utterance=1, piece=1)
    queue.pull(40, 0.0)  # piece 0 is playing
    queue.end_after_current()
    queue.play(_ramp(1, 100), utterance=1, piece=2)  # the reply was still producing
    rest = queue.pull(200, 40 / RATE)
    np.testing.assert_array_equal(rest[:60], np.arange(41, 101))
    assert not rest[60:].any()
    assert recorder.of("started") == [(1, 0, 0.0)]
    assert queue.queued_samples == 0
