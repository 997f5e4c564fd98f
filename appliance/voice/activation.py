"""When the appliance listens: always, after a wake phrase, while a key is held, or never (muted).

The wake phrase is spotted on the local STT's transcript of each short voiced segment, so
it needs no extra model and works with any phrase in any language Whisper knows. After an
accepted request a follow-up window stays open (through the reply and `follow_up_s` after
it) so the user can go on without repeating the phrase. A stop phrase ("stop", "cancel")
is never sent to the LLM: said over the agent it interrupts it, in every mode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.config import ActivationConfig
from appliance.config import ActivationMode as ActivationMode  # where the voice layer has always named it
from appliance.providers.base import TimedWord


@dataclass(frozen=True)
class Admission:
    """What to do with a finished transcript."""

    text: str | None
    """The request to answer (wake phrase removed), or None to ignore the turn."""
    woke: bool = False
    """The wake phrase was heard (play the chime)."""


_FILLERS = frozenset({"please", "it", "that", "now", "okay", "ok", "the", "music"})


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def wake_prompt(wake_phrase: str) -> str:
    """The STT prompt that makes the wake phrase heard as itself."""
    return f"{wake_phrase.capitalize()}."


class ActivationGate:
    def __init__(self, options: ActivationConfig | None = None) -> None:
        self.options = options or ActivationConfig()
        self.mode = self.options.mode
        self.talk_pressed = False
        self._window_until = float("-inf")

    # ----- what audio is heard at all ---------------------------------------------------------

    @property
    def hears_audio(self) -> bool:
        if self.mode is ActivationMode.MUTED:
            return False
        return self.mode is not ActivationMode.PUSH_TO_TALK or self.talk_pressed

    @property
    def stt_prompt(self) -> str | None:
        """In wake mode, prime the STT with the phrase: Whisper otherwise hears unusual
        words as common ones ("hey appliance" -> "hey, clients" in a synthetic voice)."""
        if self.mode is ActivationMode.WAKE:
            return wake_prompt(self.options.wake_phrase)
        return None

    # ----- what a transcript means ------------------------------------------------------------

    def is_stop(self, text: str) -> bool:
        said = words_of(text)
        if not said:
            return False
        stops = [words_of(phrase) for phrase in self.options.stop_phrases]
        return any(said[: len(stop)] == stop and all(w in _FILLERS for w in said[len(stop) :]) for stop in stops)

    def admit(self, text: str, now: float) -> Admission:
        """Pure: decides without changing state (the session calls `accepted` when it acts)."""
        if self.is_stop(text) or not words_of(text):
            return Admission(None)
        if self.mode is not ActivationMode.WAKE or now <= self._window_until:
            return Admission(text)
        rest = self._after_wake_phrase(text)
        return Admission(None) if rest is None else Admission(rest, woke=True)

    def accepted(self, now: float) -> None:
        """A request was taken: keep the follow-up window open at least through its reply."""
        self._window_until = max(self._window_until, now + self.options.follow_up_s)

    def reply_finished(self, now: float) -> None:
        if self.mode is ActivationMode.WAKE and now <= self._window_until + 1e-9:
            self._window_until = now + self.options.follow_up_s

    def heard_wake_phrase(self, text: str) -> bool:
        """`text` starts with the wake phrase (the Wyoming wake service asks only this)."""
        return self._after_wake_phrase(text) is not None

    def _after_wake_phrase(self, text: str) -> str | None:
        """The text after a wake phrase at the start of `text`, or None if it does not start with one.

        Each word of the phrase must match a word of the transcript within a small edit distance
        (one edit per four letters, at least one): "hey appliances" and "hay appliance" match,
        "the appliance store" does not.
        """
        phrase = words_of(self.options.wake_phrase)
        said = re.findall(r"\S+", text)
        heard = [" ".join(words_of(w)) for w in said]
        heard_words = [w for w in heard if w]
        if len(heard_words) < len(phrase):
            return None
        if any(not _close(h, p) for h, p in zip(heard_words, phrase, strict=False)):
            return None
        consumed, matched = 0, 0
        while matched < len(phrase):
            if heard[consumed]:
                matched += 1
            consumed += 1
        return " ".join(said[consumed:]).lstrip(" ,.!?;:-")


def request_start(wake_phrase: str, words: Sequence[TimedWord]) -> float | None:
    """Where the request after the wake phrase begins (seconds into the audio): where the phrase's last word
    ends; None if the words do not start with the wake phrase.

    Matched more loosely than the transcript is (the session has already heard the phrase; these words come
    from a second pass): where the first words, their letters run together, are closest to the phrase's
    ("hey a pliance", "hey applian ce"), or a word close to the phrase's last word is ("A appliance, ..." for
    "hey appliance" is cut too); each within one edit per four letters, and after as many words as the
    phrase has or one more. Cut at the end of that word, not later: a late cut loses the request's first sound
    ("play" heard as "place"), an early one leaves a breath."""
    phrase = words_of(wake_phrase)
    spoken = [word for word in words if words_of(word.text)]
    if not phrase:
        return None
    first = spoken[: len(phrase) + 1]
    letters = "".join(phrase)
    scores = []
    for n in range(len(phrase) - 1, len(first)):
        heard = "".join(w for said in first[: n + 1] for w in words_of(said.text))
        last = " ".join(words_of(first[n].text))
        score = min(
            _edit_distance(heard, letters) / max(1, len(letters) // 4),
            _edit_distance(last, phrase[-1]) / max(1, len(phrase[-1]) // 4),
        )
        scores.append((score, n))
    if not scores:
        return None
    score, n = min(scores)  # the closest; of equally close, the earliest
    return first[n].end if score <= 1 else None


def _close(heard: str, wanted: str) -> bool:
    return _edit_distance(heard, wanted) <= max(1, len(wanted) // 4)


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def chime(sample_rate: int = ENGINE_RATE) -> AudioChunk:
    """Two short rising tones: the appliance heard its wake phrase."""
    tones = []
    for frequency in (880.0, 1320.0):
        t = np.arange(int(0.09 * sample_rate)) / sample_rate
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
        tones.append(0.3 * envelope * np.sin(2 * np.pi * frequency * t))
    samples = np.concatenate([tones[0], np.zeros(int(0.03 * sample_rate)), tones[1]])
    return AudioChunk((samples * 32767).astype(np.int16), sample_rate)
