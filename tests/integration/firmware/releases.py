"""Signed releases for the firmware tests, made the way an operator makes them: `appliance release
keygen`, `build` and `sign` as subprocesses of this checkout. A release here holds only the appliance
wheel (`--no-deps`): the rig's venvs share the development venv's packages."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.integration.firmware.wheel import ROOT


def appliance_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`appliance ARGS` of this checkout, as a subprocess."""
    return subprocess.run([sys.executable, "-m", "appliance", *args], cwd=ROOT, capture_output=True, text=True)


def keygen(private: Path) -> Path:
    done = appliance_cli("release", "keygen", "--out", str(private))
    assert done.returncode == 0, done.stderr
    return private.with_name(private.name + ".pub")


def build_and_sign(wheel: Path, out: Path, *keys: Path) -> Path:
    done = appliance_cli("release", "build", "--wheel", str(wheel), "--no-deps", "--out", str(out))
    assert done.returncode == 0, done.stderr
    release = Path(done.stdout.strip())
    for key in keys:
        signed = appliance_cli("release", "sign", str(release), "--key", str(key))
        assert signed.returncode == 0, signed.stderr
    return release


def tampered(release: Path, out: Path) -> Path:
    """A copy of `release` whose wheel has one byte changed; manifest and signatures untouched."""
    with tarfile.open(release) as source, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as target:
        for member in source:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith(".whl"):
                data = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
            target.addfile(member, io.BytesIO(data))
    return out


def verifier(base: Path) -> Path:
    """A command that runs this checkout's `appliance` (the verifier of a first install)."""
    script = base / "checkout-appliance"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m appliance "$@"\n')
    script.chmod(0o755)
    return script
