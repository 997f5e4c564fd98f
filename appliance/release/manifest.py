"""The release manifest: what a release is (version, files and their sha256, the model manifest it
expects). It is the one thing signed; every other file is trusted through its hash in here."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_DIR = "signatures"
LOCK_NAME = "requirements.lock"
WHEEL_DIR = "wheels"
MEMBER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$")
"""A file name inside a release: relative, no `..`, no hidden or odd names."""
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class ModelManifestRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ReleaseManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: int = FORMAT
    name: str = "appliance"
    version: str = Field(pattern=VERSION_PATTERN)
    created: str = Field(description="When it was built, UTC, ISO 8601.")
    wheel: str = Field(description="The appliance wheel, a key of `files`.")
    lock: str = LOCK_NAME
    extras: list[str] = []
    with_dependencies: bool = Field(default=True, description="False: the lock holds only the appliance wheel.")
    models_manifest: ModelManifestRef
    files: dict[str, FileEntry]

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys): the bytes that are signed."""
        return (json.dumps(self.model_dump(), sort_keys=True, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReleaseManifest:
        try:
            manifest = cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "manifest"
            raise ValueError(f"{where}: {first['msg']}") from None
        for name in (*manifest.files, manifest.wheel, manifest.lock):
            if not MEMBER_PATTERN.match(name) or name == MANIFEST_NAME or name.startswith(f"{SIGNATURE_DIR}/"):
                raise ValueError(f"manifest names a file it may not: {name!r}")
        for name in (manifest.wheel, manifest.lock):
            if name not in manifest.files:
                raise ValueError(f"manifest lists {name!r} without its hash")
        return manifest


def sha256_of(stream: IO[bytes]) -> tuple[str, int]:
    """The sha256 (hex) and size of what `stream` yields, read in chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def entries(base: Path, names: Iterable[str]) -> dict[str, FileEntry]:
    out = {}
    for name in names:
        with (base / name).open("rb") as stream:
            sha, size = sha256_of(stream)
        out[name] = FileEntry(sha256=sha, size=size)
    return out
