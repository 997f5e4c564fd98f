"""`fleet top`'s rows, filters and sorting, from the payloads devices publish."""

from __future__ import annotations

import json

import pytest

from appliance.fleet.overview import FleetView, OverviewError, row_filter, sort_rows


def view_of(devices: dict[str, dict[str, dict[str, object]]]) -> FleetView:
    view = FleetView("appliance")
    for device, kinds in devices.items():
        for kind, payload in kinds.items():
            view.receive(f"appliance/{device}/{kind}", json.dumps(payload).encode())
    return view


FLEET = view_of(
    {
        "kitchen-1": {
            "status": {"state": "online", "group": "kitchen", "version": "0.2.0", "config_version": 3, "ts": 10},
            "state": {"state": "speaking", "ts": 30},
            "telemetry": {
                "cpu_percent": 12.5,
                "voice_to_voice_ms": {"p50": 500, "p95": 900},
                "providers": {"llm": "openai/gpt-4o-mini"},
                "ts": 20,
            },
        },
        "kitchen-2": {
            "status": {"state": "online", "group": "kitchen", "version": "0.1.0", "ts": 5},
            "telemetry": {"cpu_percent": 3.0, "voice_to_voice_ms": {"p50": None, "p95": None}, "ts": 6},
        },
        "hall-1": {
            "status": {"state": "offline", "group": "hall", "version": "0.2.0", "ts": 50},
            "telemetry": {"cpu_percent": 99.0, "voice_to_voice_ms": {"p95": 300}, "ts": 40},
        },
    }
)


def test_a_row_joins_status_state_and_telemetry_and_last_seen_is_the_newest() -> None:
    row = {r["id"]: r for r in FLEET.rows()}["kitchen-1"]
    assert row == {
        "id": "kitchen-1",
        "group": "kitchen",
        "state": "speaking",
        "version": "0.2.0",
        "config_version": 3,
        "last_seen": 30.0,
        "cpu": 12.5,
        "p95": 900,
        "llm": "openai/gpt-4o-mini",
    }


def test_an_offline_device_shows_offline_and_no_stale_figures() -> None:
    row = {r["id"]: r for r in FLEET.rows()}["hall-1"]
    assert row["state"] == "offline" and row["cpu"] is None and row["p95"] is None and row["last_seen"] == 50


def test_a_device_without_a_status_is_not_listed_and_a_cleared_status_forgets_it() -> None:
    view = view_of({"ghost": {"telemetry": {"cpu_percent": 1}}, "a": {"status": {"state": "online"}}})
    assert [r["id"] for r in view.rows()] == ["a"]
    view.receive("appliance/a/status", b"")
    view.receive("appliance/a/telemetry", b"not json")
    view.receive("appliance/x/y/status", b"{}")
    assert view.rows() == []


def test_filters_on_group_state_and_id_text_all_hold() -> None:
    rows = FLEET.rows()
    assert [r["id"] for r in rows if row_filter(["group:kitchen"])(r)] == ["kitchen-1", "kitchen-2"]
    assert [r["id"] for r in rows if row_filter(["group:kitchen", "state:speaking"])(r)] == ["kitchen-1"]
    assert [r["id"] for r in rows if row_filter(["state:offline"])(r)] == ["hall-1"]
    assert [r["id"] for r in rows if row_filter(["-2"])(r)] == ["kitchen-2"]
    assert [r["id"] for r in rows if row_filter(["version:0.2.0", "hall"])(r)] == ["hall-1"]


def test_an_unknown_filter_or_sort_key_is_a_one_line_error() -> None:
    with pytest.raises(OverviewError, match="unknown filter 'colour'"):
        row_filter(["colour:red"])
    with pytest.raises(OverviewError, match="cannot sort by 'speed'"):
        sort_rows([], "-speed")


def test_sorting_by_a_column_puts_missing_values_last_in_either_direction() -> None:
    rows = FLEET.rows()
    assert [r["id"] for r in sort_rows(rows, "id")] == ["hall-1", "kitchen-1", "kitchen-2"]
    assert [r["id"] for r in sort_rows(rows, "cpu")] == ["kitchen-2", "kitchen-1", "hall-1"]
    assert [r["id"] for r in sort_rows(rows, "-p95")] == ["kitchen-1", "hall-1", "kitchen-2"]
    assert [r["id"] for r in sort_rows(rows, "-version")] == ["hall-1", "kitchen-1", "kitchen-2"]
