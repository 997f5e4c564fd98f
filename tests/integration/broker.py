"""A real Mosquitto broker for the tests, on a free loopback port, with a config the tests write."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

USER, PASSWORD = "device", "s3cret-pass"


class Broker:
    def __init__(self, root: Path, port: int, secure: bool = False) -> None:
        self.root = root
        self.port = port
        self.secure = secure
        self.process: subprocess.Popen[bytes] | None = None
        if secure:
            self._make_certificates_and_users()

    @property
    def ca(self) -> Path:
        return self.root / "ca.crt"

    def _make_certificates_and_users(self) -> None:
        """A private CA, a server certificate for 127.0.0.1, and one user with a password."""

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=self.root, check=True, capture_output=True)

        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        )
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        )
        (self.root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        )
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(self.root / "passwd"), USER, PASSWORD], check=True, capture_output=True
        )
        # Started as root, mosquitto drops to its own user: let it read these test-only files.
        self.root.chmod(0o755)
        for path in self.root.iterdir():
            path.chmod(0o644)

    def start(self) -> Broker:
        config = self.root / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false"]
        if self.secure:
            lines += [
                f"cafile {self.root / 'ca.crt'}",
                f"certfile {self.root / 'server.crt'}",
                f"keyfile {self.root / 'server.key'}",
                "allow_anonymous false",
                f"password_file {self.root / 'passwd'}",
            ]
        else:
            lines.append("allow_anonymous true")
        config.write_text("\n".join(lines) + "\n")
        return self.launch(config)

    def launch(self, config: Path, log: Callable[[], str] = lambda: "") -> Broker:
        """Start mosquitto on `config` and wait until it takes connections."""
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, f"mosquitto did not start {log()}"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)


@contextlib.contextmanager
def mosquitto(secure: bool = False) -> Iterator[Broker]:
    if shutil.which("mosquitto") is None:
        raise RuntimeError("mosquitto is not installed (scripts/test installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    root = Path(tempfile.mkdtemp(prefix="mq-"))
    broker = Broker(root, port, secure).start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def rr(broker: Broker, topic: str, payload: str) -> dict[str, Any]:
    """One command through Mosquitto's own request/response client, as an operator would."""
    done = subprocess.run(
        [
            "mosquitto_rr",
            "-p",
            str(broker.port),
            "-V",
            "5",
            "-t",
            topic,
            "-e",
            f"appliance/replies/{uuid.uuid4().hex}",
            "-m",
            payload,
            "-W",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def collect(broker: Broker, topic: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    import aiomqtt

    got: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                got.append(json.loads(bytes(message.payload)))
                if len(got) >= count:
                    break
    return got
