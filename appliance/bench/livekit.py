"""`appliance bench --livekit`: voice-to-voice through a LiveKit room, as a remote caller hears it.

The engines already loaded for the bench serve a room (the same call manager as
`appliance run`); a caller in this process asks each question over WebRTC and
records what comes back. Latency runs from the caller's last voiced sample leaving
its client to the first audible agent sample arriving there, so it includes both
network legs and both jitter buffers on top of the device path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from appliance.app import Appliance
from appliance.audio.frames import ENGINE_RATE
from appliance.audio.playback import AUDIBLE_LEVEL
from appliance.audio.resample import resample
from appliance.audio.wav import read_wav
from appliance.bench.livekit_peer import RoomPeer, mint_token
from appliance.bench.livekit_server import API_KEY, API_SECRET, LiveKitServerError, LocalLiveKitServer
from appliance.calls.manager import CallManager
from appliance.config import AppConfig
from appliance.providers.secrets import resolve_secret
from appliance.transports.livekit_auth import RoomCredentials, websocket_url

ROOM = "appliance-bench"
REPLY_WAIT_S = 15.0
QUIET_AFTER_REPLY_S = 1.0


@contextlib.contextmanager
def bench_server(config: AppConfig) -> Iterator[tuple[str, str, str]]:
    """(url, api_key, api_secret): the configured server, or a local one started for the bench."""
    lk = config.livekit
    if lk.url and lk.api_key and lk.api_secret:
        secret = resolve_secret(lk.api_secret)
        assert secret is not None
        yield websocket_url(lk.url), lk.api_key, secret
        return
    server = LocalLiveKitServer()  # raises LiveKitServerError when there is no binary
    server.start()
    try:
        yield server.url, API_KEY, API_SECRET
    finally:
        server.stop()


async def livekit_voice_to_voice_ms(appliance: Appliance, config: AppConfig, questions: list[Path]) -> dict[str, Any]:
    with bench_server(config) as (url, key, secret):
        session = appliance.new_session(ENGINE_RATE)
        calls = CallManager(config.livekit, session, None, new_session=lambda: appliance.new_session(ENGINE_RATE))
        device = config.livekit.identity
        await calls.start(RoomCredentials(url, ROOM, device, api_key=key, api_secret=secret))
        peer = RoomPeer(url, mint_token(key, secret, ROOM, "bench-caller"), device)
        latencies: list[float] = []
        try:
            await peer.join()
            await _until(lambda: calls.primary_call is not None and calls.primary_call.caller is not None, 20.0)
            for path in questions:
                speech = resample(read_wav(path), ENGINE_RATE).samples
                loud = np.flatnonzero(np.abs(speech.astype(np.int32)) > AUDIBLE_LEVEL)
                tail_s = (len(speech) - (loud[-1] if len(loud) else len(speech))) / ENGINE_RATE
                last_voiced = peer.say(speech) - tail_s
                answered = await _first_audible(peer, last_voiced)
                if answered is not None:
                    latencies.append(1000.0 * (answered - last_voiced))
                await _quiet(peer)
        finally:
            await peer.leave()
            await calls.aclose()
            await session.aclose()
    return {
        "p50": float(np.percentile(latencies, 50)) if latencies else None,
        "p95": float(np.percentile(latencies, 95)) if latencies else None,
        "answered": len(latencies),
        "questions": len(questions),
    }


async def _first_audible(peer: RoomPeer, since: float) -> float | None:
    deadline = time.monotonic() + REPLY_WAIT_S
    while time.monotonic() < deadline:
        found = peer.first_audible(since, AUDIBLE_LEVEL)
        if found is not None:
            return found
        await asyncio.sleep(0.02)
    return None


async def _quiet(peer: RoomPeer) -> None:
    """Wait until the reply has played out (nothing audible for a second), as a caller would."""
    deadline = time.monotonic() + REPLY_WAIT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        recent = peer.first_audible(time.monotonic() - QUIET_AFTER_REPLY_S, AUDIBLE_LEVEL)
        if recent is None:
            return


async def _until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LiveKitServerError("the bench caller was not picked up in the room")
        await asyncio.sleep(0.05)
