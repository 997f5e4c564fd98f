"""Applying a new config to a running device, live where it can be, with a way back.

Live: the agent, the provider chains (a voice, an LLM), endpointing, interruption, activation,
timeouts, LLM options, volume. Everything else (MQTT, devices, models, compute) is saved and
takes effect at the next start; the reply says which keys those were.
"""

from __future__ import annotations

from typing import Any

from appliance.config import AppConfig
from appliance.fleet.control_surface import ControlSurface

LIVE_SESSION = ("endpointing", "interruption", "activation", "timeouts", "vad")
PROVIDER_STAGES = ("stt", "llm", "tts")
LIVE_OTHER = ("agent", "privacy", "fallback", "providers")
ALWAYS_LIVE = {"audio.volume"}
AT_NEXT_START = {"activation.pipeline"}
"""Keys of a live section that still wait for the next start (the satellite listener opens at start)."""


def changed_sections(old: AppConfig, new: AppConfig) -> dict[str, list[str]]:
    """Section -> changed keys."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    changes: dict[str, list[str]] = {}
    for section in after:
        if before.get(section) != after[section]:
            keys = after[section].keys() if isinstance(after[section], dict) else [section]
            changes[section] = sorted(k for k in keys if not isinstance(before.get(section), dict)
                                      or before[section].get(k) != after[section].get(k))  # fmt: skip
    return changes


async def apply_config(old: AppConfig, new: AppConfig, control: ControlSurface | None) -> dict[str, Any]:
    """Apply what can be applied live; returns {"applied": [...], "restart_required": [...]}."""
    changes = changed_sections(old, new)
    live: list[str] = []
    later: list[str] = []
    for section, keys in changes.items():
        dotted = [f"{section}.{k}" for k in keys]
        if (section == "audio" and set(dotted) <= ALWAYS_LIVE) or (
            control is not None and (section in LIVE_SESSION or section in PROVIDER_STAGES or section in LIVE_OTHER)
        ):
            live += [key for key in dotted if key not in AT_NEXT_START]
            later += [key for key in dotted if key in AT_NEXT_START]
        else:
            later += dotted
    if control is None:
        return {"applied": [], "restart_required": sorted(later + live)}
    await control.apply_config(new, changes)
    return {"applied": sorted(live), "restart_required": sorted(later)}
