"""A late provider raced by the next one shows in the turn record and in the fleet's telemetry and events."""

from __future__ import annotations

from appliance.fleet.events import provider_event
from appliance.fleet.telemetry import Telemetry
from appliance.providers.base import AvailabilityChanged, RaceWon
from appliance.voice.turn_record import TurnRecord


def test_races_go_into_the_record_the_events_and_a_count_of_who_won() -> None:
    race = RaceWon("llm", "openai/gpt", "local/smollm2-135m", 0.81)
    down = AvailabilityChanged("tts", "openai/tts", False, "offline")
    record = TurnRecord(turn=1)
    record.provider_event(race)
    record.provider_event(down)
    data = record.to_json()
    assert data["raced"] == [{"stage": "llm", "late": "openai/gpt", "winner": "local/smollm2-135m",
                              "raced_after_ms": 810}]  # fmt: skip
    assert data["availability"] == [down.to_json()]
    assert provider_event(race)["type"] == "race" and provider_event(down)["type"] == "provider"

    telemetry = Telemetry(None)
    assert "races_won" not in telemetry.snapshot()
    telemetry.turn_ended(record)
    telemetry.turn_ended(record)
    assert telemetry.snapshot()["races_won"] == {"local/smollm2-135m": 2}
