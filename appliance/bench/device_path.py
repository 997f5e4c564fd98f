"""`appliance bench --device`: the device path on a virtual PulseAudio card.

Idle listening: `appliance run` (echo cancellation as configured, on by default) listens to a
silent microphone; its CPU time is read from /proc over a stretch of silence. Latency: the device
probe (`device_probe`) hands the speaker clicks and hears them back through the card's loopback,
once with PortAudio's "high" latency and once with "low".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.bench.virtual_card import VirtualCard, virtual_card
from appliance.config import AppConfig

IDLE_SETTLE_S = 3.0
IDLE_MEASURE_S = 20.0
START_TIMEOUT_S = 120.0


def measure_device_path(config: AppConfig, seconds: float = IDLE_MEASURE_S) -> dict[str, Any]:
    environment = {**os.environ, "APPLIANCE_MODELS__DIR": str(Path(config.models.dir).resolve())}
    with virtual_card() as card:
        idle = idle_cpu_percent(card, environment, seconds)
        latency = {setting: _probe(card, environment, setting) for setting in ("high", "low")}
    return {"idle_cpu_percent_of_one_core": idle, "latency": latency}


def idle_cpu_percent(card: VirtualCard, environment: dict[str, str], seconds: float) -> float:
    """CPU (% of one core) of `appliance run` listening to silence on the card, after it settled."""
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run"],
            env={**environment, **card.env("silence")},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            _wait_for(process, log, "sound device: streaming")
            time.sleep(IDLE_SETTLE_S)
            cpu0, wall0 = _cpu_s(process.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, wall1 = _cpu_s(process.pid), time.monotonic()
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return round(100.0 * (cpu1 - cpu0) / (wall1 - wall0), 1)


def _probe(card: VirtualCard, environment: dict[str, str], setting: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "appliance.bench.device_probe", setting],
        env={**environment, **card.env("speaker.monitor")},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    if done.returncode != 0 or not done.stdout.strip():
        lines = [line for line in done.stderr.splitlines() if "ALSA lib" not in line]
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _wait_for(process: subprocess.Popen[bytes], log: Any, text: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        log.seek(0)
        if text in log.read():
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"appliance run did not start streaming on the virtual card (no {text!r})")
        time.sleep(0.1)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
