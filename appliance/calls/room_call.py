"""One room the box is in, and what it does there."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from appliance.transports.livekit_room import RoomTransport
from appliance.transports.ports import Announcement
from appliance.voice.session import VoiceSession


@dataclass(eq=False)
class RoomCall:
    transport: RoomTransport
    auto: bool
    """Joined from config: stays (and rejoins) with or without a caller."""
    session: VoiceSession | None = None
    primary: bool = False
    """`session` is the box's own conversation, moved here (it goes home when the call ends)."""
    caller: str | None = None
    """The participant the session talks with."""
    declined: set[str] = field(default_factory=set)
    """Callers not to pick up while they stay (handed back to the device, or told the box is busy)."""
    handed_back: set[str] = field(default_factory=set)
    """Operators who gave the conversation back while staying in the room."""
    announcement: Announcement | None = None
    last_caller_at: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.transport.name

    def describe(self) -> dict[str, Any]:
        return {
            "room": self.name,
            "identity": self.transport.identity,
            "status": str(self.transport.status),
            "caller": self.caller,
            "conversation": "device" if self.primary else ("own" if self.session else None),
            "participants": sorted(self.transport.participants),
        }
