"""Activation: the wake phrase on transcripts, the follow-up window, stop phrases."""

from __future__ import annotations

import pytest

from appliance.config import ActivationConfig
from appliance.voice.activation import ActivationGate, ActivationMode, chime


def wake_gate(**options: object) -> ActivationGate:
    return ActivationGate(ActivationConfig(mode=ActivationMode.WAKE, **options))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("heard", "wanted"),
    [
        ("Hey appliance, what time is it?", "what time is it?"),
        ("Hey, Appliance. Set a timer.", "Set a timer."),
        ("hey appliances what is the weather", "what is the weather"),
        ("Hey Appalance, turn it up.", "turn it up."),
    ],
)
def test_the_wake_phrase_is_found_and_removed(heard: str, wanted: str) -> None:
    admission = wake_gate().admit(heard, now=0.0)
    assert admission.woke is True
    assert admission.text == wanted


@pytest.mark.parametrize("heard", ["What time is it?", "Hey there, how are you?", "I love my appliance."])
def test_without_the_wake_phrase_nothing_is_admitted(heard: str) -> None:
    assert wake_gate().admit(heard, now=0.0).text is None


def test_the_wake_phrase_alone_wakes_with_an_empty_request() -> None:
    admission = wake_gate().admit("Hey appliance.", now=0.0)
    assert admission.woke is True and admission.text == ""


def test_a_custom_wake_phrase() -> None:
    gate = wake_gate(wake_phrase="computer")
    assert gate.admit("Computer, lights on.", 0.0).text == "lights on."
    assert gate.admit("Hey appliance, lights on.", 0.0).text is None


def test_the_follow_up_window_admits_without_the_phrase_until_it_closes() -> None:
    gate = wake_gate(follow_up_s=8.0)
    gate.accepted(now=10.0)
    gate.reply_finished(now=14.0)  # the window runs 8 s from the end of the reply
    assert gate.admit("and tomorrow?", now=21.9).text == "and tomorrow?"
    assert gate.admit("and tomorrow?", now=22.1).text is None


def test_always_mode_admits_everything_but_stop_phrases_and_silence() -> None:
    gate = ActivationGate()
    assert gate.admit("what time is it", 0.0).text == "what time is it"
    assert gate.admit("Stop.", 0.0).text is None
    assert gate.admit("", 0.0).text is None


@pytest.mark.parametrize("heard", ["Stop.", "stop it", "Cancel!", "Never mind.", "stop please", "be quiet now"])
def test_stop_phrases(heard: str) -> None:
    assert ActivationGate().is_stop(heard)


@pytest.mark.parametrize("heard", ["stop the timer for the oven", "don't stop", "cancellation policy", "hello"])
def test_sentences_that_merely_contain_stop_words_are_not_stop_phrases(heard: str) -> None:
    assert not ActivationGate().is_stop(heard)


def test_muted_and_push_to_talk_decide_what_is_heard() -> None:
    gate = ActivationGate()
    assert gate.hears_audio
    gate.mode = ActivationMode.MUTED
    assert not gate.hears_audio
    gate.mode = ActivationMode.PUSH_TO_TALK
    assert not gate.hears_audio
    gate.talk_pressed = True
    assert gate.hears_audio


def test_the_chime_is_short_and_audible() -> None:
    sound = chime()
    assert 0.15 < sound.duration < 0.3
    assert int(abs(sound.samples).max()) > 5000


@pytest.mark.parametrize("heard", ["The appliance store is closing.", "Hey, clients, what time is it?", "Hey!"])
def test_near_misses_of_the_wake_phrase_do_not_wake(heard: str) -> None:
    assert wake_gate().admit(heard, now=0.0).woke is False


def test_each_word_may_be_off_by_about_one_letter_in_four() -> None:
    assert wake_gate().admit("Hay appliance, lights on", 0.0).text == "lights on"


def test_the_stt_is_primed_with_the_wake_phrase_only_in_wake_mode() -> None:
    assert wake_gate().stt_prompt == "Hey appliance."
    assert ActivationGate().stt_prompt is None
