"""The voice of whichever agent is active when a sentence is spoken."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from appliance.agents.agent import Agent
from appliance.audio.frames import AudioChunk
from appliance.providers.base import TTS


class AgentVoice(TTS):
    """The active agent's own TTS if it has one, else the session's; a handoff mid-reply switches it."""

    def __init__(self, session_tts: TTS, active_agent: Callable[[], Agent]) -> None:
        self._session_tts = session_tts
        self._active_agent = active_agent
        self.sample_rate = session_tts.sample_rate
        self.descriptor = session_tts.descriptor

    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        return (self._active_agent().tts or self._session_tts).synthesize(text)
