"""The release file: an uncompressed tar (wheels are compressed already) with the manifest first, the
files it lists, and one signature member per key that signed it, appended by `sign`.

Written reproducibly (sorted names, fixed owner, mode and time), so one build of one tree is one hash.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.release.errors import ReleaseUsageError
from appliance.release.keys import key_id
from appliance.release.manifest import MANIFEST_NAME, SIGNATURE_DIR, ReleaseManifest

MAX_SIGNATURE_BYTES = 4096


@dataclass(frozen=True)
class Signature:
    key_id: str
    signature: bytes

    def to_bytes(self) -> bytes:
        body = {"key_id": self.key_id, "signature": base64.b64encode(self.signature).decode()}
        return (json.dumps(body, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        """ValueError for anything that is not a signature member."""
        body = json.loads(data)
        if not isinstance(body, dict) or not isinstance(body.get("key_id"), str):
            raise ValueError("not a signature")
        return cls(body["key_id"], base64.b64decode(str(body.get("signature", "")), validate=True))


def signature_name(signer_id: str) -> str:
    return f"{SIGNATURE_DIR}/{signer_id}.sig"


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_artifact(out: Path, manifest: ReleaseManifest, base: Path, mtime: int) -> None:
    """The unsigned release at `out`: the manifest, then every file it lists, read from `base`."""
    data = manifest.to_bytes()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_member(MANIFEST_NAME, len(data), mtime), io.BytesIO(data))
        for name in sorted(manifest.files):
            path = base / name
            with path.open("rb") as stream:
                archive.addfile(_member(name, path.stat().st_size, mtime), stream)


def read_manifest_bytes(path: Path) -> bytes:
    try:
        with tarfile.open(path, "r:") as archive:
            first = archive.next()
            if first is None or first.name != MANIFEST_NAME or not first.isreg():
                raise ReleaseUsageError(f"{path} is not a release: it does not start with {MANIFEST_NAME}")
            stream = archive.extractfile(first)
            assert stream is not None
            return stream.read()
    except (tarfile.TarError, OSError) as exc:
        raise ReleaseUsageError(f"cannot read release {path}: {exc}") from None


def sign_artifact(path: Path, private: Ed25519PrivateKey) -> str:
    """Append this key's signature of the manifest to the release; returns the key id. A key signs once."""
    signer = key_id(private.public_key())
    name = signature_name(signer)
    manifest = read_manifest_bytes(path)
    with tarfile.open(path, "r:") as archive:
        if name in archive.getnames():
            raise ReleaseUsageError(f"{path} is already signed by key {signer}")
        mtime = archive.getmember(MANIFEST_NAME).mtime
    data = Signature(signer, private.sign(manifest)).to_bytes()
    with tarfile.open(path, "a", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_member(name, len(data), int(mtime)), io.BytesIO(data))
    return signer
