"""Applying a new config to a running device, live where it can be, with a way back.

Live: the agent, the provider chains (a voice, an LLM), endpointing, interruption, activation,
timeouts, LLM options, volume. Everything else (MQTT, devices, models, compute) is saved and
takes effect at the next start; the reply says which keys those were.
"""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.app import Appliance, make_agent, session_options
from appliance.config import AppConfig
from appliance.voice.session import VoiceSession

LIVE_SESSION = ("endpointing", "interruption", "activation", "timeouts", "vad")
PROVIDER_STAGES = ("stt", "llm", "tts")
LIVE_OTHER = ("agent", "privacy", "fallback", "providers")
ALWAYS_LIVE = {"audio.volume"}


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


async def apply_config(old: AppConfig, new: AppConfig, appliance: Appliance | None,
                       session: VoiceSession | None) -> dict[str, Any]:  # fmt: skip
    """Apply what can be applied live; returns {"applied": [...], "restart_required": [...]}."""
    changes = changed_sections(old, new)
    applied: list[str] = []
    later: list[str] = []
    for section, keys in changes.items():
        dotted = [f"{section}.{k}" for k in keys]
        if section == "audio" and set(dotted) <= ALWAYS_LIVE:
            if session is not None:
                session.output.volume = new.audio.volume / 100
            applied += dotted
        elif session is not None and (section in LIVE_SESSION or section in PROVIDER_STAGES or section in LIVE_OTHER):
            applied += dotted
        else:
            later += dotted
    if session is None or appliance is None:
        return {"applied": [k for k in applied if k in ALWAYS_LIVE], "restart_required": sorted(later + [
            k for k in applied if k not in ALWAYS_LIVE])}  # fmt: skip
    stages = [s for s in PROVIDER_STAGES if s in changes or "providers" in changes or "fallback" in changes]
    if stages:
        for _ in range(100):  # let a reply in progress finish on the old engines
            if session.idle:
                break
            await asyncio.sleep(0.1)
        await appliance.swap_providers(new, stages)
        session.runtime.llm = session.providers.llm
    appliance.config = new
    session.update_options(session_options(new))
    if "agent" in changes:
        await session.handoff(make_agent(new))
    if "audio" in changes:
        session.output.volume = new.audio.volume / 100
    return {"applied": sorted(applied), "restart_required": sorted(later)}
