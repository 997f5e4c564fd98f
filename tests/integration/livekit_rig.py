"""A real LiveKit server, a headless or device appliance joined to it, and callers in the test process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.bench.livekit_peer import RoomPeer, mint_token
from appliance.bench.livekit_server import API_KEY, API_SECRET, LocalLiveKitServer
from tests.integration.app_process import launched

DEVICE_IDENTITY = "kitchen-1"


@pytest.fixture
def livekit(tmp_path: Path) -> Iterator[LocalLiveKitServer]:
    """One server per test: a test may stop and restart it, and rooms never leak between tests."""
    server = LocalLiveKitServer(log_path=tmp_path / "livekit.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def livekit_env(server: LocalLiveKitServer, room: str | None = "kitchen", **extra: str) -> dict[str, str]:
    env = {
        "APPLIANCE_LIVEKIT__URL": server.url,
        "APPLIANCE_LIVEKIT__API_KEY": API_KEY,
        "APPLIANCE_LIVEKIT__API_SECRET": API_SECRET,
        "APPLIANCE_LIVEKIT__IDENTITY": DEVICE_IDENTITY,
        "APPLIANCE_LIVEKIT__CONNECT_TIMEOUT_S": "5",
    }
    if room is not None:
        env["APPLIANCE_LIVEKIT__ROOM"] = room
    return {**env, **extra}


def mqtt_env(port: int) -> dict[str, str]:
    """Settings that put the device on a test broker, under the same id as in its rooms."""
    return {
        "APPLIANCE_MQTT__ENABLED": "true",
        "APPLIANCE_MQTT__HOST": "127.0.0.1",
        "APPLIANCE_MQTT__PORT": str(port),
        "APPLIANCE_MQTT__DEVICE_ID": DEVICE_IDENTITY,
    }


class HeadlessAppliance:
    """`appliance run` with no sound card, as a subprocess; its stderr is the event log."""

    def __init__(self, models_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
        self.err = tmp_path / "appliance.err"
        environment = {
            **os.environ,
            "APPLIANCE_MODELS__DIR": str(models_dir),
            "APPLIANCE_AUDIO__INPUT": "none",
            "APPLIANCE_STATE__DIR": str(tmp_path / "state"),
            **env,
        }
        command = [sys.executable, "-m", "appliance", "run"]
        self.proc = subprocess.Popen(command, env=environment, stderr=subprocess.STDOUT, stdout=self.err.open("w"))
        launched.append(self.proc)

    def log(self) -> str:
        """Events (stderr) and turns (stdout), in order."""
        return self.err.read_text()

    def wait_for(self, text: str, timeout: float = 60, after: int = 0) -> None:
        """Wait for `text` in the log past character `after` (what was logged before does not count)."""
        deadline = time.monotonic() + timeout
        while text not in self.log()[after:]:
            assert self.proc.poll() is None, f"appliance exited: {self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} in time: {self.log()}"
            time.sleep(0.1)

    def mark(self) -> int:
        return len(self.log())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        assert "stopping took over" not in self.log(), self.log()  # the exit deadline fired: something hung
        return code


async def caller(
    server: LocalLiveKitServer,
    room: str = "kitchen",
    identity: str = "caller-1",
    attributes: dict[str, str] | None = None,
) -> RoomPeer:
    peer = RoomPeer(server.url, mint_token(API_KEY, API_SECRET, room, identity, attributes), DEVICE_IDENTITY)
    await peer.join()
    return peer


async def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
