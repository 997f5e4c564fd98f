"""A device under a temporary root for the firmware script tests: real scripts, real release venvs,
real wheels, a real broker; only systemd is played by a stand-in (tests/integration/firmware/systemctl).

Releases are real signed releases (`appliance release build --no-deps`, `sign`) and cheap here: each
venv sees the development venv's packages (`--site-packages`) and gets only the release's own wheel
(`--no-deps`); models are hard links of the real store's default models. The config trusts the kit's
key; the first install is verified by this checkout's `appliance`, later ones by the running release's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.firmware.releases import verifier

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "firmware_scripts"
STAND_IN = Path(__file__).resolve().parent / "systemctl"
DEVICE = "fw-1"


@dataclass
class Run:
    code: int
    stderr: str
    result: dict[str, Any] | None


@dataclass(frozen=True)
class ReleaseKit:
    key: Path
    public_key: Path
    releases: dict[str, Path]
    """Signed release files by version."""


@dataclass
class DeviceRig:
    base: Path
    kit: ReleaseKit
    models: Path
    broker_port: int | None = None
    broken: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "systemd"

    @property
    def app_dir(self) -> Path:
        return self.root / "opt" / "appliance"

    def link(self, name: str) -> str | None:
        path = self.app_dir / name
        return os.readlink(path) if path.is_symlink() else None

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def restarts(self) -> int:
        return sum(1 for call in self.calls() if call.startswith("restart "))

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "SYSTEMCTL": str(STAND_IN),
            "STAND_IN_SYSTEMD": str(self.state),
            "STAND_IN_ROOT": str(self.root),
            "STAND_IN_BROKEN": " ".join(self.broken),
            "PYTHON": sys.executable,
        }
        if self.broker_port is not None:
            env["STAND_IN_MQTT"] = f"127.0.0.1 {self.broker_port} appliance/{DEVICE}"
        return env

    def config_text(self) -> str:
        text = '[audio]\ninput = "none"\noutput = "none"\n'
        text += f'[update]\ntrusted_keys = ["file:{self.kit.public_key}"]\n'
        if self.broker_port is None:
            return text + "[mqtt]\nenabled = false\n"
        return text + f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {self.broker_port}\ndevice_id = "{DEVICE}"\n'

    def script(self, name: str, *args: str, timeout: float = 240) -> Run:
        result_file = self.base / "result.json"
        result_file.unlink(missing_ok=True)
        done = subprocess.run(
            [str(SCRIPTS / name), "--root", str(self.root), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = json.loads(result_file.read_text()) if result_file.exists() else None
        return Run(done.returncode, done.stderr, result)

    def provision(self) -> Run:
        config = self.base / "appliance.toml"
        config.write_text(self.config_text())
        cards = self.root / "proc" / "asound" / "cards"
        cards.parent.mkdir(parents=True, exist_ok=True)
        cards.write_text(
            " 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0\n                      vc4-hdmi-0\n"
            " 1 [Device         ]: USB-Audio - USB PnP Sound Device\n"
            "                      USB PnP Sound Device at usb-0000:01:00.0-1.3, full speed\n"
        )
        return self.script("provision.sh", "--no-packages", "--no-user", "--config", str(config))

    def install_options(self) -> list[str]:
        """What every install here needs besides version, wheel and result file: a cheap venv, short waits."""
        options = ["--no-deps", "--site-packages", sysconfig.get_path("purelib"), "--no-model-urls"]
        options += ["--health-timeout", "15", "--settle", "0.3", "--commit-after", "0.3"]
        if self.broker_port is None:
            options.append("--no-mqtt")
        return options

    def trial(self) -> dict[str, str] | None:
        """The release on trial (install-release.sh's switch until its commit), as its fields."""
        path = self.app_dir / "trial"
        if not path.exists():
            return None
        return dict(line.split("=", 1) for line in path.read_text().splitlines())

    def systemctl(self, *args: str) -> None:
        """The stand-in systemctl, as systemd would run the unit (Restart=, a boot)."""
        subprocess.run([str(STAND_IN), *args], env=self.env(), check=True, capture_output=True, timeout=60)

    def commit(self, *extra: str) -> Run:
        options = ["--health-timeout", "15", "--commit-after", "0.3"]
        if self.broker_port is None:
            options.append("--no-mqtt")
        return self.script("commit-release.sh", *options, *extra)

    def update_result(self) -> dict[str, Any]:
        return dict(json.loads((self.root / "var/lib/appliance/update/result.json").read_text()))

    def install(self, version: str, release: Path | None = None, *extra: str) -> Run:
        """install-release.sh of the kit's signed release of `version` (or of the `release` file given)."""
        source = release or self.kit.releases[version]
        options = ["--release", str(source), *self.install_options()]
        options += ["--result-file", str(self.base / "result.json")]
        if self.link("current") is None:
            options += ["--models-from", str(self.models), "--verifier", str(verifier(self.base))]
        return self.script("install-release.sh", *options, *extra)

    def rollback(self, *extra: str) -> Run:
        options = ["--health-timeout", "15", "--settle", "0.3"]
        if self.broker_port is None:
            options.append("--no-mqtt")
        return self.script("rollback.sh", *options, *extra)
