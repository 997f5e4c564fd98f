"""Judging speech heard while the agent is busy: a real interruption, or a cough.

A pure state machine over frames, so every transition is testable without audio. The first
voiced frame pauses the agent's voice; speech that lasts `min_speech_ms` is an interruption;
quiet for `resume_after_ms` before that means a false alarm, and the voice resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from appliance.audio.frames import Int16Array
from appliance.config import InterruptionConfig


class Verdict(Enum):
    NOTHING = "nothing"
    PAUSE = "pause"
    RESUME = "resume"
    INTERRUPT = "interrupt"


@dataclass
class Candidate:
    """Speech heard while the agent is busy, not yet judged."""

    start: float
    frames: list[Int16Array]
    quiet_since: float | None = None


class BargeInJudge:
    def __init__(self, options: InterruptionConfig) -> None:
        self.options = options
        self.candidate: Candidate | None = None

    def update(
        self, frame: Int16Array, start: float, end: float, voiced: bool, confirmed: bool, preroll: list[Int16Array]
    ) -> Verdict:
        """`voiced`: this frame sounds like speech; `confirmed`: VAD says speech has truly started."""
        if not self.options.enabled:
            return Verdict.NOTHING
        candidate = self.candidate
        if candidate is None:
            if not voiced:
                return Verdict.NOTHING
            self.candidate = Candidate(start=start, frames=list(preroll))
            return Verdict.PAUSE
        candidate.frames.append(frame)
        if not voiced:
            if candidate.quiet_since is None:
                candidate.quiet_since = start
            if (end - candidate.quiet_since) * 1000.0 >= self.options.resume_after_ms:
                self.candidate = None
                return Verdict.RESUME
            return Verdict.NOTHING
        candidate.quiet_since = None
        if confirmed and (end - candidate.start) * 1000.0 + 1e-6 >= self.options.min_speech_ms:
            return Verdict.INTERRUPT
        return Verdict.NOTHING

    def take(self) -> Candidate | None:
        """The candidate, which the session turns into the next user turn."""
        candidate, self.candidate = self.candidate, None
        return candidate
