"""Builds the call manager for `appliance run` from config and the loaded engines."""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from appliance.app import Appliance
from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.audio.resample import resample
from appliance.calls.manager import CallManager
from appliance.config import AppConfig
from appliance.transports.device import DeviceTransport
from appliance.transports.livekit_auth import RoomConfigError, RoomCredentials, room_credentials
from appliance.voice.session import VoiceSession

log = logging.getLogger(__name__)


def create_calls(
    config: AppConfig, appliance: Appliance, primary: VoiceSession, device: DeviceTransport | None
) -> CallManager:
    async def synthesize(text: str) -> Int16Array:
        providers = appliance.providers
        if providers is None:
            return np.zeros(0, dtype=np.int16)
        pieces = [resample(chunk, ENGINE_RATE).samples async for chunk in providers.tts.synthesize(text)]
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)

    calls = CallManager(
        config.livekit,
        primary,
        device,
        new_session=lambda: appliance.new_session(ENGINE_RATE),
        synthesize=synthesize,
    )
    calls.on_event.append(print_call_event)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # The SDK logs each retry of its own at WARNING and ERROR; the call events above say the
        # same once, in one line. `-vv` shows them.
        logging.getLogger("livekit").setLevel(logging.CRITICAL)
    return calls


def auto_join_credentials(config: AppConfig) -> RoomCredentials | None:
    """The room to join at start, or None (not configured, or a secret that cannot be read: said once)."""
    if not config.livekit.auto_join:
        return None
    try:
        return room_credentials(config.livekit)
    except RoomConfigError as exc:
        print(f"livekit: not joining {config.livekit.room}: {exc}", file=sys.stderr, flush=True)
        return None


def print_call_event(event: dict[str, Any]) -> None:
    details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("type", "event", "room"))
    print(f"livekit: {event['room']}: {event['event']}{' ' + details if details else ''}", file=sys.stderr, flush=True)
