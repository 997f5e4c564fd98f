"""Build a release from a checkout: the appliance wheel, every dependency wheel of the extras a device
installs (a wheelhouse), a lock with their hashes, a manifest, all in one tar.

pip does the work (`pip wheel`), so the wheelhouse is what pip would install; the lock pins each wheel
by name, version and sha256, so a device installs exactly these bytes (`pip install --no-index
--require-hashes`). Wheels already built (llama-cpp-python compiles for minutes) can be reused from a
folder (`wheels_from`). The wheels are for the machine that builds: build on the devices' architecture.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.release.artifact import write_artifact
from appliance.release.errors import ReleaseBuildError, ReleaseUsageError
from appliance.release.manifest import LOCK_NAME, WHEEL_DIR, ModelManifestRef, ReleaseManifest, entries

MODELS_MANIFEST = "appliance/data/manifest.toml"
DEFAULT_EXTRAS = ("device", "cloud", "fleet")
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass
class BuildOptions:
    source: Path = Path(".")
    """The checkout the appliance wheel is built from (ignored with `wheel`)."""
    out: Path = Path("dist")
    wheel: Path | None = None
    """An appliance wheel built already, instead of building one from `source`."""
    extras: Sequence[str] = DEFAULT_EXTRAS
    with_dependencies: bool = True
    wheels_from: Sequence[Path] = field(default_factory=list)
    """Folders of wheels pip takes first (binary wheels win over newer source releases)."""
    no_index: bool = False
    """Never ask the package index: every wheel must come from `wheels_from`."""


def _pip(args: Sequence[str]) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        raise ReleaseBuildError(f"pip {args[0]} failed: {said[-1].strip() if said else done.returncode}")


def _parse_wheel_name(path: Path) -> tuple[str, str]:
    match = _WHEEL_NAME.match(path.name)
    if not match:
        raise ReleaseBuildError(f"{path.name} is not a wheel file name")
    return re.sub(r"[-_.]+", "-", match["name"]).lower(), match["version"]


def _appliance_wheel(options: BuildOptions, scratch: Path) -> Path:
    if options.wheel is not None:
        if not options.wheel.is_file():
            raise ReleaseUsageError(f"no wheel at {options.wheel}")
        return options.wheel
    if not (options.source / "pyproject.toml").is_file():
        raise ReleaseUsageError(f"{options.source} is not a checkout (no pyproject.toml)")
    built = scratch / "appliance"
    leftover = options.source / "build"  # setuptools' scratch folder in the checkout: not ours to leave
    existed = leftover.exists()
    try:
        _pip(["wheel", "--no-deps", "-q", "-w", str(built), str(options.source)])
    finally:
        if not existed:
            shutil.rmtree(leftover, ignore_errors=True)
    wheels = sorted(built.glob("appliance-*.whl"))
    if len(wheels) != 1:
        raise ReleaseBuildError(f"pip wheel made {len(wheels)} appliance wheels, not one")
    return wheels[0]


def _wheelhouse(options: BuildOptions, wheel: Path, into: Path) -> None:
    into.mkdir(parents=True)
    shutil.copy2(wheel, into / wheel.name)
    if not options.with_dependencies:
        return
    args = ["wheel", "-q", "-w", str(into)]
    for folder in options.wheels_from:
        if not folder.is_dir():
            raise ReleaseUsageError(f"--wheels-from {folder} is not a folder")
        args += ["--find-links", str(folder)]
    if options.wheels_from:
        args.append("--prefer-binary")
    if options.no_index:
        args.append("--no-index")
    extras = ",".join(options.extras)
    _pip([*args, f"{wheel}[{extras}]" if extras else str(wheel)])


def lock_text(wheels: Sequence[Path]) -> str:
    """pip's hash-checking requirements: one `name==version --hash=...` per project, sorted."""
    pinned: dict[tuple[str, str], list[str]] = {}
    for path in wheels:
        name, version = _parse_wheel_name(path)
        pinned.setdefault((name, version), []).append(hashlib.sha256(path.read_bytes()).hexdigest())
    names = [name for name, _ in pinned]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ReleaseBuildError(f"the wheelhouse has several versions of {', '.join(twice)}")
    lines = []
    for (name, version), hashes in sorted(pinned.items()):
        lines.append(f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(hashes)))
    return "\n".join(lines) + "\n"


def _models_manifest(wheel: Path) -> ModelManifestRef:
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(MODELS_MANIFEST)
        except KeyError:
            raise ReleaseBuildError(f"{wheel.name} has no {MODELS_MANIFEST}") from None
    return ModelManifestRef(path=MODELS_MANIFEST, sha256=hashlib.sha256(data).hexdigest())


def _created() -> tuple[str, int]:
    """Build time, or SOURCE_DATE_EPOCH when set, so a rebuild of one tree is byte for byte the same."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), epoch


def build_release(options: BuildOptions) -> Path:
    """The unsigned release file in `options.out`."""
    with tempfile.TemporaryDirectory(prefix="appliance-release-") as scratch_dir:
        scratch = Path(scratch_dir)
        wheel = _appliance_wheel(options, scratch)
        name, version = _parse_wheel_name(wheel)
        if name != "appliance":
            raise ReleaseUsageError(f"{wheel.name} is not an appliance wheel")
        tree = scratch / "tree"
        _wheelhouse(options, wheel, tree / WHEEL_DIR)
        wheels = sorted((tree / WHEEL_DIR).glob("*.whl"))
        (tree / LOCK_NAME).write_text(lock_text(wheels))
        created, epoch = _created()
        names = [LOCK_NAME, *(f"{WHEEL_DIR}/{w.name}" for w in wheels)]
        manifest = ReleaseManifest(
            version=version,
            created=created,
            wheel=f"{WHEEL_DIR}/{wheel.name}",
            extras=list(options.extras) if options.with_dependencies else [],
            with_dependencies=options.with_dependencies,
            models_manifest=_models_manifest(wheel),
            files=entries(tree, names),
        )
        options.out.mkdir(parents=True, exist_ok=True)
        out = options.out / f"appliance-{version}.release.tar"
        partial = out.with_name(out.name + ".partial")
        write_artifact(partial, manifest, tree, epoch)
        partial.replace(out)
    return out
