"""Deciding when the user's turn is over.

A turn ends after `min_silence_ms` of silence, unless the speculative
transcript (made during that silence) reads as unfinished ("set a timer
for..."), in which case the endpointer waits up to `max_silence_ms`. It never
holds a finished question longer than `min_silence_ms`, and a turn that never
stops (a TV in the room) is cut at `max_turn_s`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from appliance.config import EndpointingConfig

# Words a finished English sentence rarely ends on: articles, conjunctions, prepositions, fillers.
_TRAILING_WORDS = frozenset(
    {
        *("and", "or", "but", "so", "because", "if", "than"),
        *("the", "a", "an", "my", "your", "our", "their"),
        *("to", "of", "with", "for", "in", "on", "at", "from"),
        *("um", "uh", "er"),
    }
)


def looks_unfinished(text: str) -> bool:
    """Cheap lexical end-of-turn check on a transcript."""
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith(("...", "…", ",", "-")):
        return True
    if stripped.endswith(("?", "!")):
        return False
    words = re.findall(r"[a-z']+", stripped.lower())
    return bool(words) and words[-1] in _TRAILING_WORDS


class TurnEndReason(Enum):
    SILENCE = "silence"
    UNFINISHED_TIMEOUT = "max_silence"
    MAX_TURN = "max_turn"
    PUSH_TO_TALK = "push_to_talk"


@dataclass
class Endpointer:
    """Tracks one user turn on the audio timeline; the session owns one."""

    options: EndpointingConfig

    def __post_init__(self) -> None:
        self.turn_start: float | None = None
        self.last_voiced: float | None = None
        self.speaking = False

    @property
    def in_turn(self) -> bool:
        return self.turn_start is not None

    def speech_started(self, at: float) -> bool:
        """Returns True when this opens a new turn (False when the user resumed one)."""
        opened = self.turn_start is None
        if opened:
            self.turn_start = at
        self.speaking = True
        return opened

    def speech_ended(self, last_voiced: float) -> None:
        self.speaking = False
        self.last_voiced = last_voiced

    def check(self, now: float, transcript: str | None) -> TurnEndReason | None:
        """Called every frame; `transcript` is the speculative one if it is ready."""
        if self.turn_start is None:
            return None
        if now - self.turn_start + 1e-6 >= self.options.max_turn_s:
            return TurnEndReason.MAX_TURN
        if self.speaking or self.last_voiced is None:
            return None
        silence_ms = (now - self.last_voiced) * 1000.0 + 1e-6
        if silence_ms < self.options.min_silence_ms:
            return None
        if transcript is not None and looks_unfinished(transcript):
            return TurnEndReason.UNFINISHED_TIMEOUT if silence_ms >= self.options.max_silence_ms else None
        return TurnEndReason.SILENCE

    def reset(self) -> None:
        self.turn_start = None
        self.last_voiced = None
        self.speaking = False
