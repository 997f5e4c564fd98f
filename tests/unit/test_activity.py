"""VoiceActivity: hysteresis from per-frame speech probabilities (32 ms frames) to start / end events."""

from __future__ import annotations

import pytest

from appliance.config import VadConfig
from appliance.voice.activity import (
    Activity,
    ActivityEvent,
    SpeechEnded,
    SpeechStarted,
    VoiceActivity,
)

FRAME = 512 / 16000  # 32 ms


def _run(vad: VoiceActivity, probabilities: list[float]) -> list[tuple[int, ActivityEvent]]:
    """Feed one probability per 32 ms frame; (frame index, event) for every event."""
    events: list[tuple[int, ActivityEvent]] = []
    for i, p in enumerate(probabilities):
        event = vad.update(p, i * FRAME, (i + 1) * FRAME)
        if event is not None:
            events.append((i, event))
    return events


def test_start_needs_min_speech_ms_of_voiced_frames() -> None:
    vad = VoiceActivity(VadConfig(min_speech_ms=96))
    events = _run(vad, [0.1, 0.9, 0.9, 0.9])
    assert [i for i, _ in events] == [3]


def test_start_reports_the_first_voiced_frames_start_time() -> None:
    vad = VoiceActivity(VadConfig(min_speech_ms=96))
    events = _run(vad, [0.1, 0.1, 0.9, 0.9, 0.9])
    assert events == [(4, SpeechStarted(at=pytest.approx(2 * FRAME)))]


def test_default_start_takes_two_frames() -> None:
    vad = VoiceActivity()
    assert _run(vad, [0.9, 0.9]) == [(1, SpeechStarted(at=0.0))]
    assert vad.state is Activity.SPEAKING


def test_broken_run_restarts_the_count_from_the_next_voiced_frame() -> None:
    vad = VoiceActivity(VadConfig(min_speech_ms=96))
    events = _run(vad, [0.9, 0.9, 0.2, 0.9, 0.9, 0.9])
    assert events == [(5, SpeechStarted(at=pytest.approx(3 * FRAME)))]


def test_probability_between_thresholds_does_not_count_towards_a_start() -> None:
    vad = VoiceActivity()
    events = _run(vad, [0.9, 0.4, 0.9, 0.9])
    assert events == [(3, SpeechStarted(at=pytest.approx(2 * FRAME)))]


def test_probability_between_thresholds_keeps_speech_going() -> None:
    vad = VoiceActivity()
    events = _run(vad, [0.9, 0.9, 0.4, 0.4, 0.36, 0.4])
    assert [type(e) for _, e in events] == [SpeechStarted]
    assert vad.state is Activity.SPEAKING


def test_one_frame_below_deactivation_ends_speech() -> None:
    vad = VoiceActivity()
    events = _run(vad, [0.9, 0.9, 0.9, 0.1])
    assert [(i, type(e)) for i, e in events] == [(1, SpeechStarted), (3, SpeechEnded)]
    assert vad.state is Activity.QUIET


def test_end_reports_the_end_of_the_last_voiced_frame() -> None:
    vad = VoiceActivity()
    # frames 0-4 are voiced (frame 4 only above deactivation), frame 5 is quiet
    events = _run(vad, [0.9, 0.9, 0.9, 0.9, 0.4, 0.1])
    assert events[-1] == (5, SpeechEnded(last_voiced=pytest.approx(5 * FRAME)))


def test_one_frame_blip_never_starts_speech() -> None:
    vad = VoiceActivity()
    assert _run(vad, [0.1, 0.95, 0.1, 0.1, 0.1]) == []
    assert vad.state is Activity.QUIET


def test_speech_can_start_again_after_it_ended() -> None:
    vad = VoiceActivity()
    events = _run(vad, [0.9, 0.9, 0.1, 0.1, 0.9, 0.9])
    assert events[-1] == (5, SpeechStarted(at=pytest.approx(4 * FRAME)))
