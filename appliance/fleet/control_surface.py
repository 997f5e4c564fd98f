"""What the fleet code needs of a conversation: the part of `appliance.control.Control` it calls.

A protocol, so the device's own `Control` (over a `VoiceSession`) and the simulator's stand-in
(`appliance.simulate`, no engines) both drive the same link, commands, telemetry and discovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from appliance.agents.events import RunEvent
from appliance.calls.manager import CallManager
from appliance.config import AppConfig
from appliance.control import ConversationState
from appliance.providers.base import ProviderEvent
from appliance.voice.turn_record import TurnRecord


class ControlSurface(Protocol):
    calls: CallManager | None
    headless: bool

    def conversation(self) -> object:
        """The conversation commands act on; raises `control.NotAvailable` when there is none."""
        ...

    def state(self) -> ConversationState: ...

    def on_turn(self, listener: Callable[[TurnRecord], None]) -> None: ...

    def on_agent_event(self, listener: Callable[[RunEvent], None]) -> None: ...

    def on_availability(self, listener: Callable[[ProviderEvent], None]) -> None: ...

    def mute(self, on: bool) -> bool: ...

    def set_volume(self, level: int) -> int: ...

    def say(self, text: str) -> int: ...

    def stop(self) -> bool: ...

    def listen(self) -> None: ...

    async def set_agent(self, name: str) -> str: ...

    async def apply_config(self, new: AppConfig, changes: dict[str, list[str]]) -> None: ...
