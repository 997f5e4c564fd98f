"""`python -m appliance.bench.device_probe LATENCY`: the device path's own latency on the sound card
in its environment (the bench runs it on a virtual card whose microphone is the speaker's monitor).

The device transport is opened as `appliance run` opens it (echo cancellation off: the loopback is
the signal here), with a probe in place of the conversation: it hands the speaker a click every
half second and listens for it on the microphone. It prints one JSON object: PortAudio's reported
latencies, the round trip measured (from handing the click over to hearing it, on the microphone's
clock) and what the transport predicts for the same path (what it adds to voice-to-voice).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np

from appliance.app import Appliance
from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.config import load_config
from appliance.emitter import Emitter
from appliance.transports.device import DeviceOptions, DeviceTransport

CLICKS = 10
CLICK_EVERY_S = 0.5
_LOUD = 8000


class ClickProbe:
    """An AudioPort that clicks and listens: round trip per click, on the microphone's timeline."""

    def __init__(self) -> None:
        self.stop_listeners: Emitter[[]] = Emitter("stop")
        self.play_listeners: Emitter[[]] = Emitter("play")
        self.heard = 0
        """Microphone samples heard so far."""
        self.round_trips_s: list[float] = []
        self.predicted_s: list[float] = []
        self._next_click = ENGINE_RATE  # settle for a second first
        self._sent_at: int | None = None

    async def feed(self, frame: Int16Array) -> None:
        if self._sent_at is not None:
            loud = np.flatnonzero(np.abs(frame.astype(np.int32)) > _LOUD // 2)
            if len(loud):
                self.round_trips_s.append((self.heard + int(loud[0]) - self._sent_at) / ENGINE_RATE)
                self._sent_at = None
                self._next_click = self.heard + int(CLICK_EVERY_S * ENGINE_RATE)
        self.heard += len(frame)

    def pull(self, count: int, ahead: float) -> Int16Array:
        out = np.zeros(count, dtype=np.int16)
        if self._sent_at is None and self.heard >= self._next_click and len(self.round_trips_s) < CLICKS:
            out[: min(count, 80)] = _LOUD
            self._sent_at = self.heard
            self.predicted_s.append(ahead)
        return out


async def probe(latency: str | float) -> dict[str, Any]:
    config = load_config()
    appliance = await Appliance.started(config)
    session = appliance.new_session(ENGINE_RATE)
    audio = config.audio
    options = DeviceOptions(
        sample_rate=audio.sample_rate,
        block_ms=audio.block_ms,
        speaker_buffer_ms=audio.speaker_buffer_ms,
        latency=latency,
        echo_cancellation=False,
    )
    transport = DeviceTransport(session, options)
    clicks = ClickProbe()
    transport.attach(clicks)
    stop = asyncio.Event()
    running = asyncio.ensure_future(transport.run(stop))
    try:
        for _ in range(int((CLICKS + 4) * CLICK_EVERY_S * 10) + 40):
            if len(clicks.round_trips_s) >= CLICKS:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await running
        await session.aclose()
        await appliance.aclose()
    reported = transport.latency.to_json() if transport.latency else None
    return {
        "latency_setting": latency,
        "portaudio_ms": reported,
        "round_trip_ms": _stats(clicks.round_trips_s),
        "predicted_ms": _stats(clicks.predicted_s),
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "max": None, "n": 0}
    ms = [1000 * v for v in values]
    return {"p50": round(float(np.median(ms)), 1), "max": round(max(ms), 1), "n": len(ms)}


def main() -> None:
    setting = sys.argv[1] if len(sys.argv) > 1 else "high"
    latency: str | float = setting if setting in ("low", "high") else float(setting)
    print(json.dumps(asyncio.run(probe(latency))), flush=True)


if __name__ == "__main__":
    main()
