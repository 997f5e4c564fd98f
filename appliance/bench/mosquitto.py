"""Local Mosquitto brokers on loopback for `appliance bench --fleet`: one, or two bridged both ways with
the shipped mosquitto/bridge.conf (the tests' bridged pair uses the same `bridge_config`).

Persistence is on, as on a real broker, so a restart keeps the retained fleet state the devices and
operators depend on (status, desired config, rollouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "mosquitto"
BRIDGE_CONF = SHIPPED / "bridge.conf"


def shipped_limits(config: Path = SHIPPED / "appliance.conf") -> str:
    """The queue limits of the shipped broker config (not its accounts or listeners), so the bench measures
    the broker as a fleet runs it."""
    if not config.exists():
        return ""
    return "".join(f"{line}\n" for line in config.read_text().splitlines() if line.startswith("max_"))


class MosquittoError(RuntimeError):
    pass


def bridge_config(remote_port: int, shipped: Path = BRIDGE_CONF) -> str:
    """The shipped bridge.conf pointed at a plain loopback broker: its address, no account, no TLS."""
    if not shipped.exists():
        raise MosquittoError(f"no bridge config at {shipped} (run from a checkout of the repository)")
    text = re.sub(r"(?m)^address .*$", f"address 127.0.0.1:{remote_port}", shipped.read_text())
    dropped = ("remote_username", "remote_password", "bridge_cafile")
    return "\n".join(line for line in text.splitlines() if not line.startswith(dropped)) + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalMosquitto:
    """One mosquitto process on `port`, its config, log and persistence file in `root`."""

    def __init__(self, root: Path, port: int, extra: str = "") -> None:
        if shutil.which("mosquitto") is None:
            raise MosquittoError("mosquitto is not installed (apt install mosquitto)")
        self.root = root
        self.port = port
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o777)  # started as root, mosquitto drops to its own user and must write its db here

    @property
    def pid(self) -> int:
        if self.process is None:
            raise MosquittoError("mosquitto is not running")
        return self.process.pid

    @property
    def log(self) -> str:
        path = self.root / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout_s: float = 10.0) -> LocalMosquitto:
        config = self.root / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.root}/\n"
            f"log_dest file {self.root / 'mosquitto.log'}\nlog_type error\nlog_type warning\n"
            + shipped_limits()
            + self.extra
        )
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise MosquittoError(f"mosquitto on port {self.port} did not start: {self.log[-500:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as systemd stops it: it saves its retained messages before it exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


def single(root: Path) -> list[LocalMosquitto]:
    return [LocalMosquitto(root / "a", free_port()).start()]


def bridged_pair(root: Path) -> list[LocalMosquitto]:
    """A, and B with the bridge to A (one bridge carries both directions, as bridge.conf says)."""
    first = LocalMosquitto(root / "a", free_port()).start()
    port_b = free_port()
    second = LocalMosquitto(root / "b", port_b, bridge_config(first.port)).start()
    return [first, second]


async def crosses(sender_port: int, receiver_port: int, timeout_s: float) -> bool:
    """Whether a message published on one loopback broker reaches a subscriber on the other in time."""
    import aiomqtt

    topic = f"appliance/bridge-probe/{uuid.uuid4().hex}"
    v5 = aiomqtt.ProtocolVersion.V5
    async with aiomqtt.Client("127.0.0.1", receiver_port, protocol=v5) as listener:
        await listener.subscribe(topic, qos=1)
        async with aiomqtt.Client("127.0.0.1", sender_port, protocol=v5) as talker:
            await talker.publish(topic, b"probe", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                async for _message in listener.messages:
                    return True
    return False
