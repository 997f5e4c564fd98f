"""A release with its real dependencies: `appliance release build` makes a wheelhouse and a hash lock
that install into an empty venv with no package index, and pip refuses a wheel that is not the locked one.

The build takes the dependencies from the package index (or pip's cache), as on a build machine; the
install is offline, as on a device.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.firmware.releases import appliance_cli, keygen
from tests.integration.firmware.wheel import build_wheel


def normalized(pin: str) -> str:
    name, _, version = pin.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def pip_install(venv: Path, files: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check", "install", "-q", "--no-index"]
    argv += ["--find-links", str(files / "wheels"), "--require-hashes", "-r", str(files / "requirements.lock")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_a_release_installs_offline_from_its_wheelhouse_and_only_the_locked_bytes(tmp_path: Path) -> None:
    key = tmp_path / "release.key"
    public = keygen(key)
    wheel = build_wheel("1.3.0", tmp_path / "wheels")
    built = appliance_cli("release", "build", "--wheel", str(wheel), "--extras", "", "--out", str(tmp_path / "out"))
    assert built.returncode == 0, built.stderr
    release = Path(built.stdout.strip())
    assert appliance_cli("release", "sign", str(release), "--key", str(key)).returncode == 0
    files = tmp_path / "files"
    verified = appliance_cli("release", "verify", str(release), "--key", str(public), "--extract-to", str(files))
    assert verified.returncode == 0, verified.stderr
    lock = (files / "requirements.lock").read_text().splitlines()
    pinned = {line.split(" ")[0] for line in lock}
    assert "appliance==1.3.0" in pinned and {"cryptography", "pydantic", "numpy"} <= {p.split("==")[0] for p in pinned}
    assert all(" --hash=sha256:" in line for line in lock)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = pip_install(venv, files)
    assert installed.returncode == 0, installed.stderr
    frozen = subprocess.run([str(venv / "bin/python"), "-m", "pip", "freeze"], capture_output=True, text=True)
    installed_pins = {normalized(line) for line in frozen.stdout.splitlines() if "==" in line}
    assert installed_pins == pinned  # exactly the lock, nothing else
    # The installed release verifies releases with nothing but what its lock brought.
    again = subprocess.run([str(venv / "bin/appliance"), "release", "verify", str(release), "--key", str(public)],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0 and again.stdout.startswith("appliance 1.3.0: signed by key "), again.stderr

    # A wheel swapped in the wheelhouse (same name, other bytes) is refused by pip's hash check.
    packaging_wheel = next((files / "wheels").glob("packaging-*.whl"))
    shutil.copy(wheel, packaging_wheel)
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True)
    refused = pip_install(fresh, files)
    assert refused.returncode != 0 and "DO NOT MATCH THE HASHES" in refused.stderr
