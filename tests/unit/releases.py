"""Small signed releases for unit tests: a stand-in appliance wheel (a zip with the model manifest),
built into a release by the real build and signed with real Ed25519 keys."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.release.artifact import sign_artifact
from appliance.release.build import BuildOptions, build_release
from appliance.release.keys import TrustedKey, key_id


def trusted(private: Ed25519PrivateKey) -> TrustedKey:
    public = private.public_key()
    return TrustedKey(public, key_id(public))


def stand_in_wheel(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"appliance-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("appliance/__init__.py", f'__version__ = "{version}"\n')
        archive.writestr("appliance/data/manifest.toml", "# models\n")
    return wheel


def make_release(folder: Path, version: str, *signers: Ed25519PrivateKey) -> Path:
    wheel = stand_in_wheel(folder / "wheels", version)
    release = build_release(BuildOptions(out=folder / "out", wheel=wheel, with_dependencies=False))
    for private in signers:
        sign_artifact(release, private)
    return release


def rewrite(release: Path, out: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> Path:
    """A copy of `release` with members replaced (bytes) or dropped (None), and members added."""
    with tarfile.open(release) as source, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as target:
        for member in source:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name in change:
                replaced = change[member.name]
                if replaced is None:
                    continue
                data, member.size = replaced, len(replaced)
            target.addfile(member, io.BytesIO(data))
        for name, data in (add or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out
