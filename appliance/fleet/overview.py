"""What `appliance fleet top` shows: one row per device from its status, state and telemetry topics,
filtered (`group:kitchen state:speaking hall`) and sorted (`--sort -p95`).

Pure: the MQTT side feeds `FleetView.receive` with each message; rows, filters and sorting are plain
functions of what was received, so they are tested without a broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("status", "state", "telemetry")
COLUMNS = ("id", "group", "state", "version", "config_version", "last_seen", "cpu", "p95", "llm")
"""Every column of a row, in table order; `--sort` takes any of them."""
FILTER_KEYS = ("group", "state", "version", "llm")


class OverviewError(ValueError):
    """A filter or sort key that means nothing (one line)."""


@dataclass
class FleetView:
    prefix: str
    latest: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """device -> kind (status, state, telemetry) -> the newest payload."""

    def topic_filters(self) -> list[str]:
        return [f"{self.prefix}/+/{kind}" for kind in KINDS]

    def receive(self, topic: str, payload: bytes) -> None:
        """One message; an empty retained one (a decommissioned box) forgets that part of the device."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self.prefix or parts[2] not in KINDS:
            return
        device, kind = parts[1], parts[2]
        if not payload:
            self.latest.get(device, {}).pop(kind, None)
            return
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if isinstance(data, dict):
            self.latest.setdefault(device, {})[kind] = data

    def rows(self) -> list[dict[str, Any]]:
        """Devices that have a status (as in `fleet ls`)."""
        return [device_row(d, parts) for d, parts in self.latest.items() if "status" in parts]


def device_row(device: str, parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    status, state, telemetry = (parts.get(kind, {}) for kind in KINDS)
    online = status.get("state") == "online"
    latency, providers = _table(telemetry, "voice_to_voice_ms"), _table(telemetry, "providers")
    stamps = [p.get("ts") for p in (status, state, telemetry)]
    return {
        "id": device,
        "group": status.get("group"),
        "state": (state.get("state") or telemetry.get("state") or "online") if online else "offline",
        "version": status.get("version"),
        "config_version": status.get("config_version"),
        "last_seen": max((float(t) for t in stamps if isinstance(t, (int, float))), default=None),
        "cpu": telemetry.get("cpu_percent") if online else None,
        "p95": latency.get("p95") if online else None,
        "llm": providers.get("llm") if online else None,
    }


def row_filter(terms: list[str]) -> Callable[[dict[str, Any]], bool]:
    """All terms must hold: `KEY:VALUE` for a column (exact), any other text a part of the id."""
    columns: list[tuple[str, str]] = []
    texts: list[str] = []
    for term in terms:
        key, sep, value = term.partition(":")
        if sep and key in FILTER_KEYS:
            columns.append((key, value))
        elif sep:
            raise OverviewError(f"unknown filter {key!r} in {term!r} (filters: {', '.join(FILTER_KEYS)}, or id text)")
        else:
            texts.append(term)

    def keep(row: dict[str, Any]) -> bool:
        return all(str(row.get(k)) == v for k, v in columns) and all(t in str(row["id"]) for t in texts)

    return keep


def sort_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """By a column (`-column`: descending); rows without a value come last either way, ties by id."""
    descending = key.startswith("-")
    column = key.lstrip("-")
    if column not in COLUMNS:
        raise OverviewError(f"cannot sort by {column!r} (columns: {', '.join(COLUMNS)})")
    by_id = sorted(rows, key=lambda r: str(r["id"]))
    present = [r for r in by_id if r.get(column) is not None]
    missing = [r for r in by_id if r.get(column) is None]
    numeric = all(_number(r[column]) for r in present)
    present.sort(key=lambda r: r[column] if numeric else str(r[column]), reverse=descending)
    return present + missing


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}
