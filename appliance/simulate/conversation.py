"""A stand-in conversation for simulated devices: what the fleet code calls of `Control`, and no engines.

It behaves like a box that talks, on a clock instead of audio: `say` speaks for a while (announcements
queue one behind the other, `SAY_QUEUE_LIMIT` at most, as on a device), `listen` runs a whole turn
(thinking, then speaking) and publishes its record, `stop` cuts it, `mute` and `volume` hold until
changed, a handoff changes the agent, and a config change moves volume, agent, mode and providers as
the device's `Control.apply_config` would. Every turn reports the same voice-to-voice latency
(`latency_ms`), so what telemetry and the exporter show can be checked against it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from appliance.agents.events import AgentHandoffEvent, RunEvent
from appliance.aio import TaskSet
from appliance.calls.manager import CallManager
from appliance.config import ActivationMode, AppConfig
from appliance.control import ConversationState
from appliance.emitter import Emitter
from appliance.providers.base import ProviderEvent
from appliance.voice.announcements import SAY_QUEUE_LIMIT, SayQueueFull
from appliance.voice.turn_record import TurnRecord

SPEAKING_S_PER_CHAR = 0.02
"""How long a simulated reply is spoken, per character of its text."""


class SimulatedConversation:
    calls: CallManager | None = None
    headless = False

    def __init__(self, config: AppConfig, latency_ms: int, thinking_s: float = 0.2) -> None:
        self.latency_ms = latency_ms
        """The voice-to-voice latency every turn reports."""
        self.thinking_s = thinking_s
        self._state = "listening"
        self._muted = False
        self._mode = config.activation.mode.value
        self._volume = config.audio.volume
        self._agent = config.agent.name
        self._providers = providers_of(config)
        self._turn = 0
        self._waiting: deque[str] = deque()
        self._speaking: asyncio.Task[None] | None = None
        self._tasks = TaskSet("simulated conversation")
        self._turns: Emitter[[TurnRecord]] = Emitter("turn")
        self._agent_events: Emitter[[RunEvent]] = Emitter("agent event")
        self._availability: Emitter[[ProviderEvent]] = Emitter("availability")

    async def aclose(self) -> None:
        await self._tasks.aclose()

    # ----- what the fleet reads ------------------------------------------------------------------

    def conversation(self) -> object:
        return self

    def state(self) -> ConversationState:
        return ConversationState(
            state=self._state,
            hearing=False,
            mode="muted" if self._muted else self._mode,
            muted=self._muted,
            talk_pressed=False,
            volume=self._volume,
            agent=self._agent,
            providers=dict(self._providers),
        )

    def on_turn(self, listener: Callable[[TurnRecord], None]) -> None:
        self._turns.connect(listener)

    def on_agent_event(self, listener: Callable[[RunEvent], None]) -> None:
        self._agent_events.connect(listener)

    def on_availability(self, listener: Callable[[ProviderEvent], None]) -> None:
        self._availability.connect(listener)

    # ----- steering ------------------------------------------------------------------------------

    def mute(self, on: bool) -> bool:
        self._muted = on
        return on

    def set_volume(self, level: int) -> int:
        self._volume = max(0, min(100, level))
        return self._volume

    def say(self, text: str) -> int:
        if self._speaking is None or self._speaking.done():
            self._speaking = self._tasks.spawn(self._speak(text), "say")
            return 0
        if len(self._waiting) >= SAY_QUEUE_LIMIT:
            raise SayQueueFull(f"{len(self._waiting)} announcements already wait; try again later")
        self._waiting.append(text)
        return len(self._waiting)

    def stop(self) -> bool:
        was = (self._speaking is not None and not self._speaking.done()) or bool(self._waiting)
        self._waiting.clear()
        if self._speaking is not None:
            self._speaking.cancel()
        self._state = "listening"
        return was

    def listen(self) -> None:
        """As if the wake phrase had been said and a request followed: one whole turn."""
        self._tasks.spawn(self._one_turn(), "turn")

    async def set_agent(self, name: str) -> str:
        old, self._agent = self._agent, name
        self._agent_events.emit(AgentHandoffEvent(old, name))
        return name

    async def apply_config(self, new: AppConfig, changes: dict[str, list[str]]) -> None:
        self._volume = new.audio.volume
        self._mode = new.activation.mode.value if new.activation.mode is not ActivationMode.MUTED else self._mode
        self._providers = providers_of(new)
        if "agent" in changes:
            await self.set_agent(new.agent.name)

    # ----- the clock -----------------------------------------------------------------------------

    async def _speak(self, text: str) -> None:
        """`text`, then every announcement that waits behind it."""
        try:
            while True:
                self._state = "speaking"
                await asyncio.sleep(len(text) * SPEAKING_S_PER_CHAR)
                if not self._waiting:
                    break
                text = self._waiting.popleft()
        finally:
            self._state = "listening"

    async def _one_turn(self) -> None:
        self._turn += 1
        self._state = "thinking"
        await asyncio.sleep(self.thinking_s)
        reply = "Here is what I found."
        record = TurnRecord(
            turn=self._turn,
            user_text="what is new",
            agent_text=reply,
            agent=self._agent,
            providers=dict(self._providers),
        )
        record.set_latencies(end_of_turn=0.3, voice_to_voice=self.latency_ms / 1000)
        self._state = "speaking"
        await asyncio.sleep(len(reply) * SPEAKING_S_PER_CHAR)
        self._state = "listening"
        self._turns.emit(record)


def providers_of(config: AppConfig) -> dict[str, str]:
    """The provider a device would use first, per stage (the head of each chain)."""
    return {stage: getattr(config, stage).provider[0] for stage in ("stt", "llm", "tts")}
