"""Check a release before anything in it is used: the artifact's hash, a signature of its manifest by a
trusted key, then every file against the signed manifest. Only a release that passed is extracted.

Nothing is unpacked to check it: members are read from the tar as streams and hashed. A release with
anything the manifest does not cover (an extra file, a link, an odd name) is refused: it is not what
was signed.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from packaging.version import InvalidVersion, Version

from appliance.release.artifact import MAX_SIGNATURE_BYTES, Signature
from appliance.release.errors import RefusalCode, ReleaseRefused
from appliance.release.keys import TrustedKey
from appliance.release.manifest import MANIFEST_NAME, MEMBER_PATTERN, SIGNATURE_DIR, ReleaseManifest, sha256_of

MAX_MANIFEST_BYTES = 1 << 20
MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class VerifiedRelease:
    manifest: ReleaseManifest
    signed_by: str
    """The id of the trusted key whose signature verified."""
    sha256: str
    """Of the whole artifact."""
    manifest_bytes: bytes
    """The manifest as signed."""


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_of(stream)[0]


def _untrusted(message: str) -> ReleaseRefused:
    return ReleaseRefused(RefusalCode.UNTRUSTED, message)


def _read_members(archive: tarfile.TarFile) -> tuple[bytes, list[bytes], dict[str, tuple[str, int]]]:
    """The manifest's bytes, the signature members and the (sha256, size) of every other file."""
    manifest: bytes | None = None
    signatures: list[bytes] = []
    files: dict[str, tuple[str, int]] = {}
    seen: set[str] = set()
    for count, member in enumerate(archive, start=1):
        if count > MAX_MEMBERS:
            raise _untrusted(f"more than {MAX_MEMBERS} files: not a release")
        name = member.name
        if not member.isreg():
            raise _untrusted(f"{name!r} is not a regular file: a release holds only files")
        if not MEMBER_PATTERN.match(name) or name in seen:
            raise _untrusted(f"{name!r} is not a file name a release may hold (or it is there twice)")
        seen.add(name)
        stream = archive.extractfile(member)
        assert stream is not None
        if name == MANIFEST_NAME:
            if member.size > MAX_MANIFEST_BYTES:
                raise _untrusted("the manifest is too large to be one")
            manifest = stream.read()
        elif name.startswith(f"{SIGNATURE_DIR}/"):
            if member.size > MAX_SIGNATURE_BYTES:
                raise _untrusted(f"{name} is too large to be a signature")
            signatures.append(stream.read())
        else:
            files[name] = sha256_of(stream)
    if manifest is None:
        raise _untrusted(f"no {MANIFEST_NAME}: not a release")
    return manifest, signatures, files


def _check_signature(manifest: bytes, signatures: Sequence[bytes], keys: Sequence[TrustedKey]) -> str:
    """The id of the trusted key that signed `manifest`; a refusal that says why none did."""
    if not keys:
        raise _untrusted("no trusted keys are configured ([update] trusted_keys): no release can be trusted")
    if not signatures:
        raise _untrusted("the release is not signed (appliance release sign)")
    by_id = {key.key_id: key for key in keys}
    unknown = []
    for data in signatures:
        try:
            signature = Signature.from_bytes(data)
        except ValueError:
            raise _untrusted("a signature member is not a signature") from None
        key = by_id.get(signature.key_id)
        if key is None:
            unknown.append(signature.key_id)
            continue
        try:
            key.key.verify(signature.signature, manifest)
        except InvalidSignature:
            raise _untrusted(f"the signature by key {key.key_id} does not verify: the manifest was changed") from None
        return key.key_id
    trusted = ", ".join(sorted(by_id))
    raise _untrusted(f"signed only by unknown key(s) {', '.join(unknown)}; trusted: {trusted}")


def verify_release(path: Path, keys: Sequence[TrustedKey], expected_sha256: str | None = None) -> VerifiedRelease:
    """The release at `path`, checked; ReleaseRefused (untrusted_release, hash_mismatch) otherwise."""
    whole = file_sha256(path)
    if expected_sha256 is not None and whole != expected_sha256.lower():
        raise ReleaseRefused(
            RefusalCode.HASH_MISMATCH, f"the release's sha256 is {whole}, not the {expected_sha256} announced"
        )
    try:
        with tarfile.open(path, "r:") as archive:
            manifest_bytes, signatures, files = _read_members(archive)
    except tarfile.TarError as exc:
        raise _untrusted(f"not a release (an uncompressed tar): {exc}") from None
    signer = _check_signature(manifest_bytes, signatures, keys)
    try:
        manifest = ReleaseManifest.from_bytes(manifest_bytes)
    except ValueError as exc:  # signed, yet not a manifest this appliance reads: refuse rather than guess
        raise _untrusted(f"the signed manifest is not usable here: {exc}") from None
    for name, entry in sorted(manifest.files.items()):
        if name not in files:
            raise ReleaseRefused(RefusalCode.HASH_MISMATCH, f"{name} is listed in the manifest but missing")
        if files[name] != (entry.sha256, entry.size):
            raise ReleaseRefused(RefusalCode.HASH_MISMATCH, f"{name} differs from the signed manifest")
    extra = sorted(set(files) - set(manifest.files))
    if extra:
        raise _untrusted(f"{extra[0]} is not in the signed manifest")
    return VerifiedRelease(manifest, signer, whole, manifest_bytes)


def check_not_older(version: str, running: str | None, allow_downgrade: bool) -> None:
    """Refuse (downgrade) a release older than the running one unless a downgrade was asked for."""
    if allow_downgrade or not running:
        return
    try:
        older = Version(version) < Version(running)
    except InvalidVersion:
        older = True  # no order known: only an explicit downgrade may go ahead
    if older:
        raise ReleaseRefused(
            RefusalCode.DOWNGRADE, f"{version} is older than the running {running}: a downgrade must be asked for"
        )


def extract_release(path: Path, verified: VerifiedRelease, destination: Path) -> None:
    """The files of a verified release into `destination` (new), each checked against the manifest again
    as it is written: the file may have changed since it was verified. The signed manifest goes beside
    them, saying what was installed."""
    destination.mkdir(parents=True)
    (destination / MANIFEST_NAME).write_bytes(verified.manifest_bytes)
    files = verified.manifest.files
    with tarfile.open(path, "r:") as archive:
        for member in archive:
            if member.name not in files:
                continue
            target = destination / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            digest = hashlib.sha256()
            with open(target, "xb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            os.chmod(target, 0o644)
            if digest.hexdigest() != files[member.name].sha256:
                raise ReleaseRefused(RefusalCode.HASH_MISMATCH, f"{member.name} changed after it was verified")
    missing = [name for name in files if not (destination / name).is_file()]
    if missing:
        raise ReleaseRefused(RefusalCode.HASH_MISMATCH, f"{missing[0]} vanished after it was verified")
