"""`systemd-analyze verify` on unit files, offline, under a root of their own.

verify loads the units the way systemd would, so it needs the system's own units (sysinit.target and
friends) and every ExecStart binary to exist under that root; nothing here talks to a running systemd,
so it works as root in a container and on a machine that does not boot with systemd.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SYSTEM_UNITS = Path("/usr/lib/systemd/system")


@dataclass
class Verdict:
    code: int
    output: str


def exec_paths(unit: Path) -> list[str]:
    """The binaries a unit's Exec*= lines run (their prefixes like `-` or `+` stripped)."""
    paths = []
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip().startswith("Exec") and value.strip():
            paths.append(value.split()[0].lstrip("-@:+!|"))
    return paths


def verify(root: Path, units: list[str]) -> Verdict:
    """Verify `units` from root/etc/systemd/system; the system units are copied in first if missing."""
    if shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir():
        raise RuntimeError("systemd-analyze is not installed (scripts/setup --test installs systemd)")
    system = root / "usr/lib/systemd/system"
    if not system.exists():
        shutil.copytree(SYSTEM_UNITS, system, symlinks=True)
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "SYSTEMD_LOG_COLOR": "0"},
    )
    return Verdict(done.returncode, (done.stdout + done.stderr).strip())
