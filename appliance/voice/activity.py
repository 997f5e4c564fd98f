"""From per-frame speech probabilities to speech start / end, with hysteresis.

Pure and clock-free: the caller passes each frame's audio-timeline end time, so
the same code runs on a live microphone, a file at any speed, and in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from appliance.config import VadConfig


class Activity(Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class SpeechStarted:
    at: float
    """Audio time of the first voiced frame's start."""


@dataclass(frozen=True)
class SpeechEnded:
    last_voiced: float
    """Audio time just after the last voiced sample."""


ActivityEvent = SpeechStarted | SpeechEnded


class VoiceActivity:
    """Hysteresis over probabilities: start above `activation`, stop below `deactivation`.

    A start needs `min_speech_ms` of consecutive voiced frames so a click does not
    open a turn; a single quiet frame ends speech, and it is the endpointer's job
    to decide whether that pause ends the turn.
    """

    def __init__(self, options: VadConfig | None = None) -> None:
        self.options = options or VadConfig()
        self.state = Activity.QUIET
        self._run_start = 0.0
        self.last_voiced = 0.0

    def update(self, probability: float, frame_start: float, frame_end: float) -> ActivityEvent | None:
        opts = self.options
        if self.state is Activity.SPEAKING:
            if probability >= opts.deactivation:
                self.last_voiced = frame_end
                return None
            self.state = Activity.QUIET
            return SpeechEnded(self.last_voiced)
        if probability < opts.activation:
            self.state = Activity.QUIET
            return None
        if self.state is Activity.QUIET:
            self.state = Activity.STARTING
            self._run_start = frame_start
        self.last_voiced = frame_end
        if (frame_end - self._run_start) * 1000.0 + 1e-6 >= opts.min_speech_ms:
            self.state = Activity.SPEAKING
            return SpeechStarted(self._run_start)
        return None

    def reset(self) -> None:
        self.state = Activity.QUIET
