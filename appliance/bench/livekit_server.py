"""A local livekit-server on loopback, for the tests and `appliance bench --livekit`.

The binary is built once by `scripts/livekit-server` (from the Go module proxy) and
cached; this starts it on free ports with the development keys and waits until its
HTTP endpoint answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "1.13.5"
API_KEY, API_SECRET = "devkey", "secret"


class LiveKitServerError(RuntimeError):
    pass


def find_binary() -> Path:
    """$APPLIANCE_LIVEKIT_SERVER, or what `scripts/livekit-server` cached."""
    explicit = os.environ.get("APPLIANCE_LIVEKIT_SERVER")
    if explicit:
        return Path(explicit)
    cache = Path(
        os.environ.get("APPLIANCE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "appliance"
    )
    binary = cache / f"livekit-server-{VERSION}" / "livekit-server"
    if not binary.exists():
        raise LiveKitServerError(f"no livekit-server at {binary}: build it with scripts/livekit-server")
    return binary


def free_port(count: int = 1) -> int:
    """A port p such that p .. p+count-1 look free on loopback (TCP and UDP)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count < 65535 and all(_free(base + i) for i in range(count)):
            return base
    raise LiveKitServerError("no free port range on loopback")


def _free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


class LocalLiveKitServer:
    def __init__(self, binary: Path | None = None, log_path: Path | None = None) -> None:
        self.binary = binary or find_binary()
        self.log_path = log_path
        self.port = free_port(4)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        body = (
            f"port: {self.port}\n"
            f"rtc:\n  tcp_port: {self.port + 1}\n  udp_port: {self.port + 2}\n  use_external_ip: false\n"
            f"keys:\n  {API_KEY}: {API_SECRET}\n"
        )
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(self.binary), "--bind", "127.0.0.1", "--node-ip", "127.0.0.1", "--config-body", body],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LiveKitServerError(f"livekit-server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise LiveKitServerError(f"livekit-server did not answer on port {self.port} within {timeout:g} s")

    def stop(self, crash: bool = False) -> None:
        """Stop it (gracefully, which can take 10 s of draining; or killed at once, like a crash)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            if crash:
                process.kill()
                process.wait()
                return
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> LocalLiveKitServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
