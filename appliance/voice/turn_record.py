"""The per-turn record: what was said, by whom, through which providers, how fast.

Latency fields (milliseconds):
- end_of_turn: audio time from the user's last voiced sample to the turn decision.
- stt_final: audio time from the last voiced sample until the final transcript was ready
  (small or zero when the speculative transcript made during the silence was used).
- llm_ttft: wall time from the LLM request to its first token.
- tts_ttfb: wall time from the first text piece sent to TTS to its first audio.
- voice_to_voice: audio time from the user's last voiced sample to the first audible
  sample of the reply, as the user hears it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.agents.events import AgentHandoffEvent, FunctionCallEvent, RunEvent
from appliance.providers.base import ProviderEvent, RaceWon

LATENCY_FIELDS = ("end_of_turn", "stt_final", "llm_ttft", "tts_ttfb", "voice_to_voice")


@dataclass
class TurnRecord:
    turn: int
    user_text: str = ""
    agent_text: str = ""
    agent: str = ""
    providers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    latency_ms: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(LATENCY_FIELDS))
    error: str | None = None
    availability: list[dict[str, Any]] = field(default_factory=list)
    """Provider availability changes during the turn (a fallback switched, a provider recovered)."""
    raced: list[dict[str, Any]] = field(default_factory=list)
    """Late providers raced by the next one during the turn, and which answered first (`RaceWon`)."""

    def provider_event(self, event: ProviderEvent) -> None:
        (self.raced if isinstance(event, RaceWon) else self.availability).append(event.to_json())

    def note(self, event: RunEvent) -> None:
        """What the agent did during the turn: a tool call is listed, a handoff changes the agent."""
        if isinstance(event, FunctionCallEvent):
            self.tool_calls.append({"name": event.name, "arguments": dict(event.arguments)})
        elif isinstance(event, AgentHandoffEvent):
            self.agent = event.new_agent

    def set_latency(self, name: str, seconds: float) -> None:
        self.latency_ms[name] = max(0, round(seconds * 1000))

    def set_latencies(self, **seconds: float | None) -> None:
        """Several at once; the ones not measured (None) are left out."""
        for name, value in seconds.items():
            if value is not None:
                self.set_latency(name, value)

    def latency_summary(self) -> str:
        """One line a person reads: 'voice-to-voice 759 ms (end of turn 320, stt 384, ...)'."""
        ms = self.latency_ms
        return (
            f"voice-to-voice {ms['voice_to_voice']} ms (end of turn {ms['end_of_turn']}, stt {ms['stt_final']}, "
            f"llm ttft {ms['llm_ttft']}, tts ttfb {ms['tts_ttfb']})"
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "turn": self.turn,
            "user_text": self.user_text,
            "agent_text": self.agent_text,
            "agent": self.agent,
            "providers": dict(self.providers),
            "tool_calls": list(self.tool_calls),
            "interrupted": self.interrupted,
            "latency_ms": dict(self.latency_ms),
        }
        if self.error:
            data["error"] = self.error
        if self.availability:
            data["availability"] = list(self.availability)
        if self.raced:
            data["raced"] = list(self.raced)
        return data
