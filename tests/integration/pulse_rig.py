"""A virtual sound card that PortAudio really opens: PulseAudio with a pipe-fed mic and a null speaker.

The microphone is a pipe source: a thread writes audio into its fifo at real-time pace (silence
between utterances, since the source blocks while nothing is written). The speaker is a null sink;
`parec` records its monitor, which is what the device played.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample

_BLOCK = ENGINE_RATE // 100


class PulseRig:
    echo_gain = 0.0
    """Set above 0 to mix what the speaker played back into the mic: a real acoustic echo loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "native"
        self.fifo = root / "mic.fifo"
        self._queue: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._recorded = bytearray()
        self.server: subprocess.Popen[bytes] | None = None
        self._echo_read = 0
        self.env = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_SOURCE": "mic",
            "PULSE_SINK": "speaker",
            "XDG_RUNTIME_DIR": str(root),
        }

    def say(self, audio: AudioChunk) -> float:
        """Queue speech for the mic; returns how long it lasts."""
        samples = resample(audio, ENGINE_RATE).samples
        with self._lock:
            for start in range(0, len(samples), _BLOCK):
                block = np.zeros(_BLOCK, dtype=np.int16)
                piece = samples[start : start + _BLOCK]
                block[: len(piece)] = piece
                self._queue.append(block)
        return len(samples) / ENGINE_RATE

    def pause_server(self) -> None:
        """Freeze the sound server (SIGSTOP): to its clients the device is gone."""
        assert self.server is not None
        self.server.send_signal(signal.SIGSTOP)

    def resume_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGCONT)

    def speaker(self) -> AudioChunk:
        """Everything the speaker played since the rig started (16 kHz mono)."""
        data = bytes(self._recorded)
        return AudioChunk(np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").copy(), ENGINE_RATE)

    def _feed(self) -> None:
        with open(self.fifo, "wb", buffering=0) as fifo:
            start = time.monotonic()
            sent = 0
            while not self._stop.is_set():
                with self._lock:
                    block = self._queue.popleft() if self._queue else np.zeros(_BLOCK, dtype=np.int16)
                block = self._with_echo(block)
                try:
                    fifo.write(block.tobytes())
                except BrokenPipeError:
                    return
                sent += 1
                delay = start + sent * _BLOCK / ENGINE_RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def _with_echo(self, block: np.ndarray) -> np.ndarray:
        """Add the speaker's next unheard block, as the room carries it to the mic."""
        if self.echo_gain <= 0:
            self._echo_read = len(self._recorded) // 2
            return block
        available = len(self._recorded) // 2
        if available - self._echo_read < _BLOCK:
            return block
        start = self._echo_read * 2
        played = np.frombuffer(bytes(self._recorded[start : start + _BLOCK * 2]), dtype="<i2")
        self._echo_read += _BLOCK
        if available - self._echo_read > 10 * _BLOCK:  # fell behind (a scheduling hiccup): skip ahead
            self._echo_read = available - _BLOCK
        echo = played.astype(np.float64) * self.echo_gain
        return np.clip(block.astype(np.float64) + echo, -32768, 32767).astype(np.int16)

    def _record(self, stream: subprocess.Popen[bytes]) -> None:
        assert stream.stdout is not None
        while chunk := stream.stdout.read(3200):
            self._recorded.extend(chunk)


@contextlib.contextmanager
def pulse_rig() -> Iterator[PulseRig]:
    if shutil.which("pulseaudio") is None or shutil.which("parec") is None:
        raise RuntimeError("pulseaudio and pulseaudio-utils are needed (scripts/test installs them)")
    rig = PulseRig(Path(tempfile.mkdtemp(prefix="pa-", dir="/tmp")))
    script = rig.root / "default.pa"
    script.write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={rig.socket}\n"
        "load-module module-null-sink sink_name=speaker rate=16000 channels=1\n"
        f"load-module module-pipe-source source_name=mic file={rig.fifo} format=s16le rate=16000 channels=1\n"
    )
    env = {**os.environ, **rig.env, "HOME": str(rig.root)}
    server = subprocess.Popen(
        [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "-F",
            str(script),
            "--log-target=stderr",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rig.server = server
    recorder: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 10
        while not (rig.socket.exists() and rig.fifo.exists()):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("pulseaudio did not start")
            time.sleep(0.05)
        feeder = threading.Thread(target=rig._feed, daemon=True)
        feeder.start()
        recorder = subprocess.Popen(
            [
                "parec",
                "-d",
                "speaker.monitor",
                "--format=s16le",
                "--rate=16000",
                "--channels=1",
                "--latency-msec=20",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=rig._record, args=(recorder,), daemon=True).start()
        yield rig
    finally:
        rig._stop.set()
        server.send_signal(signal.SIGCONT)
        if recorder is not None:
            recorder.terminate()
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(5)
        shutil.rmtree(rig.root, ignore_errors=True)
