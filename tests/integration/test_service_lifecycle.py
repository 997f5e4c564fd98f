"""`appliance run` as systemd runs it: READY after loading, STATUS, a steady watchdog, a clean stop.

The test plays systemd's part: it binds the NOTIFY_SOCKET datagram socket and sets WATCHDOG_USEC,
then reads what the process sends, and sends SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.wav import read_wav
from tests.fakes import silence
from tests.integration.app_process import Appliance, launched
from tests.integration.broker import collect, mosquitto
from tests.integration.conftest import DATA
from tests.integration.pulse_rig import pulse_rig
from tests.integration.speech_check import audible, overlap, transcribe


class SystemdSide:
    """The receiving end of NOTIFY_SOCKET: each datagram with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for field in data.decode().split("\n"):
                self.messages.append((time.monotonic(), field))

    def fields(self) -> list[str]:
        return [field for _, field in self.messages]

    def first(self, prefix: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, field in list(self.messages):
                if field.startswith(prefix):
                    return at
            time.sleep(0.02)
        raise AssertionError(f"no {prefix!r} from the service; got {self.fields()}")

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[SystemdSide]:
    side = SystemdSide(tmp_path / "notify.sock")
    try:
        yield side
    finally:
        side.close()


def test_ready_status_watchdog_and_a_clean_stop_that_says_offline(
    systemd: SystemdSide, models_dir: Path, tmp_path: Path
) -> None:
    with mosquitto() as broker:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(systemd.path),
            "WATCHDOG_USEC": "1000000",
            "APPLIANCE_MODELS__DIR": str(models_dir),
            "APPLIANCE_AUDIO__INPUT": "none",
            "APPLIANCE_MQTT__ENABLED": "true",
            "APPLIANCE_MQTT__HOST": "127.0.0.1",
            "APPLIANCE_MQTT__PORT": str(broker.port),
            "APPLIANCE_MQTT__DEVICE_ID": "svc-1",
            "APPLIANCE_STATE__DIR": str(tmp_path / "state"),
        }
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "run"], env=env, stderr=subprocess.PIPE)
        launched.append(proc)
        ready_at = systemd.first("READY=1")
        assert ready_at - started > 0.5  # after loading the engines, not at exec
        systemd.first("STATUS=state=listening")
        systemd.first("STATUS=state=listening mqtt=connected")
        time.sleep(3.0)
        pings = [at for at, field in systemd.messages if field == "WATCHDOG=1"]
        assert len(pings) >= 5, systemd.fields()
        gaps = np.diff(pings[1:])
        assert 0.35 < float(np.median(gaps)) < 0.65, gaps  # half of WatchdogSec
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "STOPPING=1" in systemd.fields()
        stopping_at = systemd.first("STOPPING=1")
        assert not [at for at, field in systemd.messages if field == "WATCHDOG=1" and at > stopping_at + 1.0]
        (status,) = asyncio.run(collect(broker, "appliance/svc-1/status", 1))
        assert status["state"] == "offline"


def test_sigterm_while_speaking_finishes_the_sentence_then_exits(
    systemd: SystemdSide, models_dir: Path, tmp_path: Path
) -> None:
    with pulse_rig() as rig:
        app = Appliance(rig, models_dir, env={"NOTIFY_SOCKET": str(systemd.path)})
        try:
            systemd.first("READY=1")
            rig.say(silence(0.5))
            rig.say(read_wav(DATA / "questions" / "q09.wav"))  # how to make tea: more than one sentence
            speaking_at = systemd.first("STATUS=state=speaking", timeout=30)
            heard_before = len(rig.speaker())
            app.proc.send_signal(signal.SIGTERM)
            assert app.proc.wait(30) == 0
            stopped_after = time.monotonic() - speaking_at
            record = json.loads(app.out.read_text().splitlines()[0])
            assert record["interrupted"] is True and record["agent_text"], record
            heard = transcribe(models_dir, rig.speaker())
            assert overlap(record["agent_text"], heard) >= 0.6, (record["agent_text"], heard)
            after_sigterm = AudioChunk(rig.speaker().samples[heard_before:], ENGINE_RATE)
            assert audible(after_sigterm, 0.0, 1e9)  # it went on speaking after SIGTERM
            assert stopped_after < 15.0
            assert "STOPPING=1" in systemd.fields()
        finally:
            if app.proc.poll() is None:
                app.proc.kill()
