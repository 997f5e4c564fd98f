"""What a satellite sends Home Assistant of an utterance: without the wake phrase it starts with, cut where
the STT's word times put the phrase's end; whole when there are no word times or no wake phrase."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.providers.base import STT, TimedWord, Transcript
from appliance.voice.activation import request_start
from appliance.voice.remote import wake_phrase_cutter

SPOKEN = [
    TimedWord("Hey,", 0.10, 0.30),
    TimedWord("appliance,", 0.35, 0.80),
    TimedWord("what", 1.00, 1.20),
    TimedWord("time", 1.25, 1.50),
]


def test_the_request_starts_where_the_wake_phrase_ends() -> None:
    assert request_start("hey appliance", SPOKEN) == pytest.approx(0.80)
    assert request_start("hey appliance", SPOKEN[:2]) == pytest.approx(0.80)  # the phrase alone
    heard_loosely = [TimedWord("Hay", 0.1, 0.3), TimedWord("appliances.", 0.35, 0.8), *SPOKEN[2:]]
    assert request_start("hey appliance", heard_loosely) == pytest.approx(0.80)
    first_word_misheard = [TimedWord("A", 0.1, 0.3), *SPOKEN[1:]]  # whisper-tiny, on a loaded machine
    assert request_start("hey appliance", first_word_misheard) == pytest.approx(0.80)
    split = [TimedWord("Hey", 0.1, 0.3), TimedWord("a", 0.35, 0.5), TimedWord("pliance", 0.5, 0.8), *SPOKEN[2:]]
    assert request_start("hey appliance", split) == pytest.approx(0.80)
    split_early = [TimedWord("Hey", 0.1, 0.3), TimedWord("applian", 0.35, 0.7), TimedWord("ce", 0.7, 0.8), *SPOKEN[2:]]
    assert request_start("hey appliance", split_early) == pytest.approx(0.80)  # the closest, not the first close
    first_word_lost = SPOKEN[1:]
    assert request_start("hey appliance", first_word_lost) is None  # "appliance, what time": too early to trust


def test_no_cut_without_the_wake_phrase_at_the_start() -> None:
    assert request_start("hey appliance", SPOKEN[2:]) is None  # a follow-up, no wake phrase
    late = [TimedWord("the", 0, 0.1), TimedWord("new", 0.1, 0.2), *SPOKEN]
    assert request_start("hey appliance", late) is None  # "the new hey appliance": not where a phrase starts
    assert request_start("hey appliance", SPOKEN[:1]) is None
    other_words = [TimedWord("hey", 0, 0.2), TimedWord("apple", 0.2, 0.5), TimedWord("pie", 0.5, 0.8)]
    assert request_start("hey appliance", other_words) is None  # "hey apple pie" is not the phrase
    assert request_start("hey appliance", []) is None
    punctuation_only = [TimedWord("...", 0.0, 0.1), *SPOKEN]
    assert request_start("hey appliance", punctuation_only) == pytest.approx(0.80)


class TimedSTT(STT):
    descriptor = "test/timed"

    def __init__(self, words: list[TimedWord] | Exception | None) -> None:
        self.words = words
        self.prompts: list[str | None] = []

    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        return Transcript("")

    async def timed_words(
        self, audio: Int16Array, language: str | None = None, prompt: str | None = None
    ) -> list[TimedWord] | None:
        self.prompts.append(prompt)
        if isinstance(self.words, Exception):
            raise self.words
        return self.words


@pytest.mark.parametrize(
    ("words", "kept_s"),
    [(SPOKEN, 2.0 - 0.8), (SPOKEN[2:], 2.0), (None, 2.0), (RuntimeError("engine gone"), 2.0)],
    ids=["cut", "no-wake-phrase", "no-word-times", "engine-fails"],
)
def test_the_cutter_sends_what_follows_the_wake_phrase_or_everything(
    words: list[TimedWord] | Exception | None, kept_s: float
) -> None:
    audio = np.arange(2 * ENGINE_RATE, dtype=np.int32).astype(np.int16)
    stt = TimedSTT(words)
    cut = wake_phrase_cutter(lambda: stt, "hey appliance")

    async def send() -> Int16Array:
        return await cut(audio)

    sent = asyncio.run(send())
    assert len(sent) == round(kept_s * ENGINE_RATE)
    assert np.array_equal(sent, audio[len(audio) - len(sent) :])  # the end of the utterance, unchanged
    assert stt.prompts == ["Hey appliance."]  # heard as the session's transcript was: primed with the phrase
