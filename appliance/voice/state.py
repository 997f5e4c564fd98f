"""The session's explicit states and the options that steer its transitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from appliance.providers.base import LLMOptions
from appliance.voice.activation import ActivationOptions
from appliance.voice.activity import ActivityOptions
from appliance.voice.endpointing import EndpointingOptions
from appliance.voice.reply import ReplyTimeouts


class SessionState(Enum):
    LISTENING = "listening"
    """Waiting for, or hearing, the user (speculative STT and a held reply may run)."""
    THINKING = "thinking"
    """The turn is committed; transcript, LLM and TTS are working on the first audio."""
    SPEAKING = "speaking"
    """The reply is playing (possibly paused while a possible interruption is judged)."""


@dataclass(frozen=True)
class InterruptionOptions:
    enabled: bool = True
    min_speech_ms: int = 250
    """Speech over the agent this long is a real interruption; shorter is a cough."""
    resume_after_ms: int = 400
    """After a false interruption, quiet this long resumes the paused reply."""


@dataclass(frozen=True)
class SessionOptions:
    activity: ActivityOptions = field(default_factory=ActivityOptions)
    endpointing: EndpointingOptions = field(default_factory=EndpointingOptions)
    interruption: InterruptionOptions = field(default_factory=InterruptionOptions)
    reply_timeouts: ReplyTimeouts = field(default_factory=ReplyTimeouts)
    stt_timeout_s: float = 10.0
    llm: LLMOptions = field(default_factory=LLMOptions)
    preemptive: bool = True
    """Start the reply on the speculative transcript, before the turn is committed (held)."""
    language: str | None = "en"
    activation: ActivationOptions = field(default_factory=ActivationOptions)
    timeout_message: str | None = "Sorry, I can't answer that right now."
    """Said when STT or the LLM does not answer in time (None: stay quiet)."""
    history_chars: int = 4000
