"""Two real Mosquitto brokers on free loopback ports, bridged both ways with the shipped mosquitto/bridge.conf."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from appliance.bench.mosquitto import bridge_config, crosses, free_port
from tests.integration.broker import Broker


class BridgedBroker(Broker):
    """A test broker whose config ends with the bridge to `remote_port`, its log in a file."""

    def __init__(self, root: Path, port: int, remote_port: int) -> None:
        super().__init__(root, port)
        self.remote_port = remote_port

    @property
    def log(self) -> str:
        path = self.root / "mosquitto.log"
        return path.read_text() if path.exists() else ""

    def start(self) -> BridgedBroker:
        config = self.root / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\npersistence false\nallow_anonymous true\n"
            f"log_dest file {self.root / 'mosquitto.log'}\nlog_type all\n" + bridge_config(self.remote_port)
        )
        self.launch(config, lambda: self.log)
        return self


def wait_bridged(a: Broker, b: Broker, timeout: float = 30) -> None:
    """Until a message crosses the bridge in both directions (the bridge dials out after its broker starts)."""
    deadline = time.monotonic() + timeout
    for sender, receiver in ((a, b), (b, a)):
        while not asyncio.run(crosses(sender.port, receiver.port, 1.0)):
            assert time.monotonic() < deadline, f"the bridge never carried {sender.port} -> {receiver.port}"


@contextlib.contextmanager
def bridged_mosquittos() -> Iterator[tuple[Broker, BridgedBroker]]:
    """Broker A, and broker B with the bridge to A: devices and operators may use either."""
    if shutil.which("mosquitto") is None:
        raise RuntimeError("mosquitto is not installed (scripts/test installs it)")
    root = Path(tempfile.mkdtemp(prefix="mq-bridge-"))
    (root / "a").mkdir()
    (root / "b").mkdir()
    a = Broker(root / "a", free_port())
    b = BridgedBroker(root / "b", free_port(), a.port)
    try:
        a.start()
        b.start()
        wait_bridged(a, b)
        yield a, b
    finally:
        b.stop()
        a.stop()
        shutil.rmtree(root, ignore_errors=True)
