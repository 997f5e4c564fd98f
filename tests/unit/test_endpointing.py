"""Endpointing: when the user's turn is over, on the audio timeline."""

from __future__ import annotations

import pytest

from appliance.config import EndpointingConfig
from appliance.voice.endpointing import (
    Endpointer,
    TurnEndReason,
    looks_unfinished,
)

FRAME = 512 / 16000  # 32 ms


def _t(frame: int) -> float:
    """Audio time of a frame boundary, computed as the session does."""
    return frame * FRAME


def _after_speech(options: EndpointingConfig | None = None, start: int = 10, end: int = 50) -> Endpointer:
    endpointer = Endpointer(options or EndpointingConfig(min_silence_ms=320, max_silence_ms=1600))
    endpointer.speech_started(_t(start))
    endpointer.speech_ended(_t(end))
    return endpointer


# ----- looks_unfinished ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "set a timer for ten minutes and",
        "play the",
        "turn on the lights um",
        "remind me to call mom,",
        "so I was thinking...",
        "so I was thinking…",
        "And The",
    ],
)
def test_transcript_ending_mid_phrase_looks_unfinished(text: str) -> None:
    assert looks_unfinished(text)


@pytest.mark.parametrize("text", ["What time is it?", "Turn on the lights.", "thanks"])
def test_finished_transcript_does_not_look_unfinished(text: str) -> None:
    assert not looks_unfinished(text)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_transcript_does_not_look_unfinished(text: str) -> None:
    assert not looks_unfinished(text)


@pytest.mark.parametrize("text", ["What's the weather like?", "Who are you talking to?"])
def test_finished_question_ending_in_a_trailing_word_does_not_look_unfinished(text: str) -> None:
    assert not looks_unfinished(text)


# ----- Endpointer ------------------------------------------------------------------------


def test_turn_ends_after_min_silence() -> None:
    endpointer = _after_speech()
    assert endpointer.check(_t(60), "What time is it?") is TurnEndReason.SILENCE


def test_turn_does_not_end_one_frame_before_min_silence() -> None:
    endpointer = _after_speech()
    assert endpointer.check(_t(59), "What time is it?") is None


def test_turn_ends_after_min_silence_without_a_transcript() -> None:
    endpointer = _after_speech()
    assert endpointer.check(_t(60), None) is TurnEndReason.SILENCE


def test_unfinished_transcript_holds_the_turn_past_min_silence() -> None:
    endpointer = _after_speech()
    assert endpointer.check(_t(60), "set a timer for") is None
    assert endpointer.check(_t(99), "set a timer for") is None


def test_unfinished_transcript_ends_the_turn_at_max_silence() -> None:
    endpointer = _after_speech()
    assert endpointer.check(_t(100), "set a timer for") is TurnEndReason.UNFINISHED_TIMEOUT


def test_finished_question_is_not_held_past_min_silence() -> None:
    endpointer = _after_speech()
    assert endpointer.check(_t(60), "What's the weather like?") is TurnEndReason.SILENCE


def test_first_speech_start_opens_a_turn() -> None:
    endpointer = Endpointer(EndpointingConfig())
    assert endpointer.speech_started(1.0) is True
    assert endpointer.in_turn


def test_resumed_speech_keeps_the_same_turn() -> None:
    endpointer = _after_speech()
    assert endpointer.speech_started(_t(55)) is False
    assert endpointer.turn_start == _t(10)


def test_turn_does_not_end_while_the_user_speaks_again() -> None:
    endpointer = _after_speech()
    endpointer.speech_started(_t(55))
    assert endpointer.check(_t(200), None) is None


def test_resumed_speech_resets_the_silence() -> None:
    endpointer = _after_speech()
    endpointer.speech_started(_t(55))
    endpointer.speech_ended(_t(70))
    assert endpointer.check(_t(79), None) is None
    assert endpointer.check(_t(80), None) is TurnEndReason.SILENCE


def test_max_turn_cuts_a_turn_that_never_stops() -> None:
    endpointer = Endpointer(EndpointingConfig(max_turn_s=30.0))
    endpointer.speech_started(2.0)
    assert endpointer.check(31.968, None) is None
    assert endpointer.check(32.0, None) is TurnEndReason.MAX_TURN


def test_max_turn_cuts_exactly_at_max_turn_s_on_the_frame_grid() -> None:
    endpointer = Endpointer(EndpointingConfig(max_turn_s=3.2))
    endpointer.speech_started(_t(5))
    assert endpointer.check(_t(105), None) is TurnEndReason.MAX_TURN


def test_check_without_a_turn_returns_none() -> None:
    endpointer = Endpointer(EndpointingConfig())
    assert endpointer.check(100.0, "anything") is None


def test_check_after_reset_returns_none() -> None:
    endpointer = _after_speech()
    endpointer.reset()
    assert not endpointer.in_turn
    assert endpointer.check(_t(500), None) is None
