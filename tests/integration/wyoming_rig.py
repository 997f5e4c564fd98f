"""A headless `appliance run` with the Wyoming services on, and the `wyoming` library's own client to talk
to it (the client Home Assistant's Wyoming integration is built on)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from appliance.audio.frames import AudioChunk as EngineAudio
from appliance.audio.resample import resample

LISTENING = re.compile(r"wyoming: listening on 127\.0\.0\.1:(\d+)")


class WyomingDevice:
    def __init__(self, models_dir: Path, folder: Path, port: int = 0, wait: bool = True) -> None:
        env = {
            **os.environ,
            "APPLIANCE_MODELS__DIR": str(models_dir),
            "APPLIANCE_AUDIO__INPUT": "none",
            "APPLIANCE_STATE__DIR": str(folder / "state"),
            "APPLIANCE_WYOMING__ENABLED": "true",
            "APPLIANCE_WYOMING__HOST": "127.0.0.1",
            "APPLIANCE_WYOMING__PORT": str(port),
            "APPLIANCE_WYOMING__ZEROCONF": "false",
        }
        self.err = folder / "device.err"
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "run"], env=env, stderr=self.err.open("w"))
        self.port = self._wait_for_port() if wait else port

    def wait_for(self, text: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.err.read_text():
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, f"no {text!r}: {self.err.read_text()}"
            time.sleep(0.2)

    def _wait_for_port(self, timeout: float = 180) -> int:
        deadline = time.monotonic() + timeout
        while not (found := LISTENING.search(self.err.read_text())):
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, f"the Wyoming server did not start: {self.err.read_text()}"
            time.sleep(0.2)
        return int(found.group(1))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Exchange:
    events: list[Event] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """When each event arrived, on the loop's clock."""
    sent_at: float = 0.0
    """When the last request event was written."""

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]


async def exchange(port: int, requests: Sequence[Event], until: str, timeout: float = 120.0) -> Exchange:
    """Send `requests` with the library's TCP client and read until an event of type `until` (or `error`)."""
    loop = asyncio.get_running_loop()
    result = Exchange()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for request in requests:
            await client.write_event(request)
        result.sent_at = loop.time()
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout)
            assert event is not None, f"the server closed the connection after {[e.type for e in result.events]}"
            result.events.append(event)
            result.times.append(loop.time())
            if event.type in (until, "error"):
                return result


def audio_events(
    audio: EngineAudio, rate: int = 16000, width: int = 2, channels: int = 1, chunk_s: float = 0.05
) -> list[Event]:
    """audio-start, chunks of `chunk_s`, audio-stop: `audio` in the given PCM format."""
    samples = resample(audio, rate).samples.astype(np.int64)
    if width == 1:
        pcm = ((samples >> 8) + 128).astype(np.uint8)
    elif width == 4:
        pcm = (samples << 16).astype("<i4")
    else:
        pcm = samples.astype("<i2")
    frames = np.repeat(pcm, channels)
    step = int(rate * chunk_s) * channels
    events = [AudioStart(rate=rate, width=width, channels=channels).event()]
    for at in range(0, len(frames), step):
        block = frames[at : at + step].tobytes()
        events.append(AudioChunk(rate=rate, width=width, channels=channels, audio=block).event())
    return [*events, AudioStop().event()]


def received_audio(result: Exchange) -> EngineAudio:
    (start,) = result.of("audio-start")
    assert start.data["width"] == 2 and start.data["channels"] == 1
    payload = b"".join(e.payload or b"" for e in result.of("audio-chunk"))
    return EngineAudio(np.frombuffer(payload, dtype="<i2").copy(), start.data["rate"])
