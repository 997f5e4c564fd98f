"""What happens in the rooms, as typed events: joined, left, caller_joined, caller_left, busy,
operator_joined, operator_left, handoff, connection, error. The fleet publishes them
(`fleet/events.py`), the service prints them, tests read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallEvent:
    event: str
    room: str
    details: dict[str, Any] = field(default_factory=dict)
    """identity, reason, state, message, to: whichever the event has."""

    def line(self) -> str:
        """One line for people: `kitchen: caller_joined identity=alice`."""
        details = " ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.room}: {self.event}{' ' + details if details else ''}"
