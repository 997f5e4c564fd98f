"""The session's explicit states and the options that steer its transitions.

The option groups are the config's own sections (`appliance/config.py`), with their defaults and
documentation written once there; the session takes them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from appliance.config import (
    ActivationConfig,
    AgentConfig,
    EndpointingConfig,
    InterruptionConfig,
    LlmConfig,
    SttConfig,
    TimeoutsConfig,
    VadConfig,
)
from appliance.providers.base import LLMOptions


class SessionState(Enum):
    LISTENING = "listening"
    """Waiting for, or hearing, the user (speculative STT and a held reply may run)."""
    THINKING = "thinking"
    """The turn is committed; transcript, LLM and TTS are working on the first audio."""
    SPEAKING = "speaking"
    """The reply is playing (possibly paused while a possible interruption is judged)."""


HISTORY_CHARS_PER_TOKEN = 2
"""The chat history kept for the LLM: about half its context window, at ~4 characters a token."""


@dataclass(frozen=True)
class SessionOptions:
    activity: VadConfig = field(default_factory=VadConfig)
    endpointing: EndpointingConfig = field(default_factory=EndpointingConfig)
    interruption: InterruptionConfig = field(default_factory=InterruptionConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    """STT, first token and first audio; `message` is said when STT or the LLM times out ("": quiet)."""
    llm: LLMOptions = field(default_factory=LLMOptions)
    language: str | None = field(default_factory=lambda: SttConfig().language)
    activation: ActivationConfig = field(default_factory=ActivationConfig)
    history_chars: int = field(default_factory=lambda: LlmConfig().context_tokens * HISTORY_CHARS_PER_TOKEN)
    max_tool_steps: int = field(default_factory=lambda: AgentConfig().max_tool_steps)
