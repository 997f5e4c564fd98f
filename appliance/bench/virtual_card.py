"""A virtual sound card for `appliance bench --device`: PulseAudio with a silent mic and a null speaker.

The microphone `silence` is a null source (the server makes the silence on its own clock, so no
writer thread of ours runs while CPU is measured); the speaker `speaker` is a null sink, and its
monitor `speaker.monitor` used as the microphone is a loopback: the device hears what it played,
through the sound server's own buffers only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class VirtualCardError(RuntimeError):
    """PulseAudio is missing or did not start (one line)."""


@dataclass(frozen=True)
class VirtualCard:
    root: Path

    def env(self, microphone: str = "silence") -> dict[str, str]:
        """What a process needs to find the card; `microphone` is "silence" or "speaker.monitor"."""
        return {
            "PULSE_SERVER": f"unix:{self.root / 'native'}",
            "PULSE_SOURCE": microphone,
            "PULSE_SINK": "speaker",
            "XDG_RUNTIME_DIR": str(self.root),
            "HOME": str(self.root),
        }


@contextlib.contextmanager
def virtual_card() -> Iterator[VirtualCard]:
    if shutil.which("pulseaudio") is None:
        raise VirtualCardError("pulseaudio is not installed (scripts/setup installs it)")
    card = VirtualCard(Path(tempfile.mkdtemp(prefix="bench-pa-", dir="/tmp")))
    script = card.root / "default.pa"
    script.write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={card.root / 'native'}\n"
        "load-module module-null-sink sink_name=speaker rate=16000 channels=1\n"
        "load-module module-null-source source_name=silence rate=16000 channels=1\n"
    )
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-F", str(script)],
        env={**os.environ, **card.env()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (card.root / "native").exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise VirtualCardError("pulseaudio did not start")
            time.sleep(0.05)
        yield card
    finally:
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(5)
        if server.poll() is None:
            server.kill()
        shutil.rmtree(card.root, ignore_errors=True)
