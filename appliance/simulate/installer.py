"""The simulator's stand-in for `[update] installer`: "installs" a release a simulated device was sent.

A simulated device runs the real `update` command (fetch, sha256, signature by a trusted key, every file
against the signed manifest, no downgrade unless asked), which then runs its installer as it would
request-update.sh or install-release.sh on a box. This is that installer for a simulated device: it takes
the version from the release's manifest, records it in the device's state dir (`release.json`, which the
simulator reads at each start of the device) and writes the outcome file the update command replies
with. The simulated device then restarts, as the service does after a real install, and its status
shows the new version. Nothing is unpacked or installed: it is a tool for tests and benchmarks, like the
stand-in conversation, not a second install path.

It runs as a script (`python installer.py --state-dir DIR --release FILE --sha256 HEX --result-file FILE
[--allow-downgrade]`), with the standard library only, so a hundred devices updating at once do not each
import the appliance package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from pathlib import Path

RECORD_NAME = "release.json"
"""In a simulated device's state dir: the version it runs after an install (and the one before)."""
MANIFEST_NAME = "manifest.json"


def installed_version(state_dir: Path) -> str | None:
    """The version a stand-in install recorded for this device, if any."""
    try:
        record = json.loads((state_dir / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    version = record.get("version") if isinstance(record, dict) else None
    return version if isinstance(version, str) and version else None


def _manifest_version(release: Path) -> str:
    with tarfile.open(release, "r:") as archive:
        first = archive.next()
        if first is None or first.name != MANIFEST_NAME:
            raise ValueError(f"{release} does not start with {MANIFEST_NAME}")
        stream = archive.extractfile(first)
        assert stream is not None
        version = json.loads(stream.read()).get("version")
    if not isinstance(version, str) or not version:
        raise ValueError("the manifest names no version")
    return version


def _write_json(path: Path, data: dict[str, object]) -> None:
    """Atomically, as install-release.sh writes its outcome: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--release", type=Path, required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--result-file", type=Path, required=True)
    parser.add_argument("--allow-downgrade", action="store_true")
    args = parser.parse_args(argv)
    try:
        version = _manifest_version(args.release)
    except (OSError, ValueError, tarfile.TarError) as exc:
        _write_json(args.result_file, {"outcome": "failed", "version": "", "message": f"simulated install: {exc}"})
        return 1
    previous = installed_version(args.state_dir)
    outcome = "current" if previous == version else "installed"
    args.state_dir.mkdir(parents=True, exist_ok=True)
    record = {"version": version, "previous": previous, "sha256": args.sha256, "ts": round(time.time(), 3)}
    _write_json(args.state_dir / RECORD_NAME, record)
    _write_json(args.result_file, {"outcome": outcome, "version": version, "running": version,
                                   "message": f"simulated install of {version}"})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
