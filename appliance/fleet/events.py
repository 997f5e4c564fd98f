"""The payloads of `appliance/<id>/events`: one builder per event type, so every publisher sends the same
shape and the schema is read in one place.

    {"type": "turn", ...turn record}          a finished turn (transcripts only if privacy allows)
    {"type": "handoff", "from", "to"}         the agent changed
    {"type": "provider", "stage", "provider", "available", "reason"}   a provider went down or came back
    {"type": "race", "stage", "late", "winner", "raced_after_ms"}   a late provider was raced by the next
    {"type": "call", "event", "room", ...}    something happened in a LiveKit room
    {"type": "error", "source", "message"[, "code"]}   a part of the device failed (it keeps running)
"""

from __future__ import annotations

from typing import Any

from appliance.calls.events import CallEvent
from appliance.providers.base import ProviderEvent, RaceWon
from appliance.voice.turn_record import TurnRecord

Event = dict[str, Any]


def turn_event(record: TurnRecord, *, publish_transcripts: bool) -> Event:
    event: Event = {"type": "turn", **record.to_json()}
    if not publish_transcripts:
        event.pop("user_text", None)
        event.pop("agent_text", None)
    return event


def handoff_event(old_agent: str, new_agent: str) -> Event:
    return {"type": "handoff", "from": old_agent, "to": new_agent}


def provider_event(change: ProviderEvent) -> Event:
    if isinstance(change, RaceWon):
        return {"type": "race", **change.to_json()}
    return {"type": "provider", **change.to_json()}


def call_event(event: CallEvent) -> Event:
    return {"type": "call", "event": event.event, "room": event.room, **event.details}


def error_event(source: str, message: str, code: str | None = None) -> Event:
    event: Event = {"type": "error", "source": source, "message": message}
    if code is not None:
        event["code"] = code
    return event
