"""What a transport's connection is doing, as a state plus a detail, never a string to split.

The console, the journal, the service status and the fleet all show it; they read `state` to decide
(is it an error? is it up?) and print the whole status (`unavailable: no input device`) for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar


class SoundDeviceState(Enum):
    CLOSED = "closed"
    STREAMING = "streaming"
    UNAVAILABLE = "unavailable"
    """It could not be opened (retried with backoff); the detail says why."""
    LOST = "lost"
    """It stopped delivering audio (unplugged, the sound server gone); it is being reopened."""

    @property
    def is_error(self) -> bool:
        return self in (SoundDeviceState.UNAVAILABLE, SoundDeviceState.LOST)


class RoomState(Enum):
    CLOSED = "closed"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    UNAVAILABLE = "unavailable"
    """Joining failed for now (retried with backoff); the detail says why."""
    FAILED = "failed"
    """The server refused us for good (a bad token): no more retries."""
    LOST = "lost"
    """The connection dropped; rejoining."""


S = TypeVar("S", SoundDeviceState, RoomState)


@dataclass(frozen=True)
class Status(Generic[S]):
    state: S
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state.value}: {self.detail}" if self.detail else self.state.value


SoundDeviceStatus = Status[SoundDeviceState]
RoomStatus = Status[RoomState]
