"""What a device reports every few seconds: load, memory, temperature, state, providers, latency."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from appliance.fleet.control_surface import ControlSurface
from appliance.system.process import current_rss_mb
from appliance.voice.turn_record import TurnRecord

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


class Telemetry:
    def __init__(
        self, control: ControlSurface | None, window: int = 50, calls: Callable[[], list[dict[str, Any]]] | None = None
    ) -> None:
        self.control = control
        self.calls = calls
        """The rooms the box is in (the call manager's snapshot), when remote calls run."""
        self.started = time.monotonic()
        self._cpu = (time.monotonic(), time.process_time())
        self._latencies: deque[int] = deque(maxlen=window)
        self._race_winners: Counter[str] = Counter()
        """Turns where a late provider was raced, by who answered first (since start)."""
        if control is not None:
            control.on_turn(self.turn_ended)

    def turn_ended(self, record: TurnRecord) -> None:
        value = record.latency_ms.get("voice_to_voice")
        if value is not None:
            self._latencies.append(value)
        for race in record.raced:
            self._race_winners[race["winner"]] += 1

    def snapshot(self) -> dict[str, Any]:
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu
        self._cpu = (wall, cpu)
        latencies = list(self._latencies)
        conversation = self.control.state() if self.control is not None else None
        data: dict[str, Any] = {
            "uptime_s": round(wall - self.started, 1),
            "cpu_percent": round(100 * (cpu - last_cpu) / max(wall - last_wall, 1e-3), 1),
            "rss_mb": round(current_rss_mb(), 1),
            "temperature_c": _temperature(),
            "state": conversation.state if conversation else "headless",
            "voice_to_voice_ms": {
                "p50": float(np.percentile(latencies, 50)) if latencies else None,
                "p95": float(np.percentile(latencies, 95)) if latencies else None,
                "turns": len(latencies),
            },
        }
        if self._race_winners:
            data["races_won"] = dict(self._race_winners)
        if self.calls is not None:
            data["calls"] = self.calls()
        if conversation is not None and conversation.state != "headless":
            data["providers"] = conversation.providers
            data["agent"] = conversation.agent
            data["muted"] = conversation.muted
            data["volume"] = conversation.volume
        return data


def _temperature() -> float | None:
    try:
        return round(int(THERMAL.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None
