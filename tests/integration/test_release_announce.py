"""`appliance fleet announce`: only a release the trusted keys verify becomes the newest, on a real Mosquitto."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.broker import mosquitto
from tests.unit.releases import make_release


def announce(port: int, release: Path, trusted: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APPLIANCE_UPDATE__TRUSTED_KEYS": f'["{trusted}"]'}
    return subprocess.run(
        [sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{port}", "announce", str(release),
         "--url", "https://releases.example.com/appliance-0.9.0.release.tar"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def retained(port: int, topic: str) -> str:
    got = subprocess.run(["mosquitto_sub", "-p", str(port), "-t", topic, "-W", "2"], capture_output=True, text=True)
    return got.stdout.strip()


def test_only_a_trusted_release_is_announced_as_the_newest(tmp_path: Path) -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    trusted = base64.b64encode(raw).decode()
    signed = make_release(tmp_path / "good", "0.9.0", key)
    foreign = make_release(tmp_path / "foreign", "0.9.1", stranger)
    with mosquitto() as broker:
        refused = announce(broker.port, foreign, trusted)
        assert refused.returncode == 1 and "untrusted_release" in refused.stderr and "not announced" in refused.stderr
        assert retained(broker.port, "appliance/release/latest") == ""
        done = announce(broker.port, signed, trusted)
        assert done.returncode == 0, done.stderr
        latest = json.loads(retained(broker.port, "appliance/release/latest"))
        assert latest["version"] == "0.9.0" and latest["release"].endswith("appliance-0.9.0.release.tar")
        assert latest["sha256"] == hashlib.sha256(signed.read_bytes()).hexdigest()
