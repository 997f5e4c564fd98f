"""Releases: build, sign, verify (hash, signature, rotated keys), downgrade, extract, keys by reference."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.release.errors import RefusalCode, ReleaseRefused, ReleaseUsageError
from appliance.release.keys import generate_key_pair, load_private_key, public_text, trusted_keys
from appliance.release.verify import check_not_older, extract_release, file_sha256, verify_release
from tests.unit.releases import make_release, rewrite, trusted

OLD_KEY, NEW_KEY, STRANGER = (Ed25519PrivateKey.generate() for _ in range(3))
WHEEL = "wheels/appliance-1.1.0-py3-none-any.whl"


def refusal(release: Path, keys: list[Ed25519PrivateKey], sha256: str | None = None) -> ReleaseRefused:
    with pytest.raises(ReleaseRefused) as refused:
        verify_release(release, [trusted(k) for k in keys], sha256)
    return refused.value


def test_a_release_is_a_tar_with_the_manifest_first_a_hash_lock_and_the_wheel(tmp_path: Path) -> None:
    release = make_release(tmp_path, "1.1.0")
    with tarfile.open(release) as archive:
        names = archive.getnames()
        manifest = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
        lock = archive.extractfile("requirements.lock").read().decode()  # type: ignore[union-attr]
        wheel = archive.extractfile(WHEEL).read()  # type: ignore[union-attr]
    assert names == ["manifest.json", "requirements.lock", WHEEL]
    assert lock == f"appliance==1.1.0 --hash=sha256:{hashlib.sha256(wheel).hexdigest()}\n"
    assert manifest["version"] == "1.1.0" and manifest["wheel"] == WHEEL
    assert manifest["files"][WHEEL] == {"sha256": hashlib.sha256(wheel).hexdigest(), "size": len(wheel)}
    assert manifest["models_manifest"] == {
        "path": "appliance/data/manifest.toml",
        "sha256": hashlib.sha256(b"# models\n").hexdigest(),
    }


def test_a_rebuild_with_source_date_epoch_is_byte_for_byte_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764600000")
    first = file_sha256(make_release(tmp_path / "a", "1.1.0"))
    assert file_sha256(make_release(tmp_path / "b", "1.1.0")) == first


def test_a_signed_release_verifies_and_names_its_signer(tmp_path: Path) -> None:
    release = make_release(tmp_path, "1.1.0", OLD_KEY)
    verified = verify_release(release, [trusted(OLD_KEY)], file_sha256(release))
    assert verified.manifest.version == "1.1.0" and verified.signed_by == trusted(OLD_KEY).key_id


def test_rotated_keys_either_trusted_key_may_sign(tmp_path: Path) -> None:
    keys = [trusted(OLD_KEY), trusted(NEW_KEY)]
    by_old = make_release(tmp_path / "old", "1.1.0", OLD_KEY)
    by_new = make_release(tmp_path / "new", "1.1.0", NEW_KEY)
    by_both = make_release(tmp_path / "both", "1.1.0", STRANGER, OLD_KEY, NEW_KEY)
    assert verify_release(by_old, keys).signed_by == keys[0].key_id
    assert verify_release(by_new, keys).signed_by == keys[1].key_id
    assert verify_release(by_both, keys).signed_by == keys[0].key_id  # an unknown extra signer is no harm


def test_a_release_signed_by_another_key_is_untrusted(tmp_path: Path) -> None:
    refused = refusal(make_release(tmp_path, "1.1.0", STRANGER), [OLD_KEY])
    assert refused.code is RefusalCode.UNTRUSTED
    stranger, old = trusted(STRANGER).key_id, trusted(OLD_KEY).key_id
    assert refused.message == f"signed only by unknown key(s) {stranger}; trusted: {old}"


def test_unsigned_or_no_trusted_keys_is_untrusted(tmp_path: Path) -> None:
    unsigned = refusal(make_release(tmp_path / "u", "1.1.0"), [OLD_KEY])
    assert unsigned.code is RefusalCode.UNTRUSTED and "not signed" in unsigned.message
    no_keys = refusal(make_release(tmp_path / "k", "1.1.0", OLD_KEY), [])
    assert no_keys.code is RefusalCode.UNTRUSTED and "no trusted keys" in no_keys.message


def test_a_tampered_file_is_a_hash_mismatch(tmp_path: Path) -> None:
    release = make_release(tmp_path, "1.1.0", OLD_KEY)
    tampered = rewrite(release, tmp_path / "t.tar", {WHEEL: b"not the wheel that was signed"})
    refused = refusal(tampered, [OLD_KEY])
    assert refused.code is RefusalCode.HASH_MISMATCH and refused.message == f"{WHEEL} differs from the signed manifest"
    missing = refusal(rewrite(release, tmp_path / "m.tar", {WHEEL: None}), [OLD_KEY])
    assert missing.code is RefusalCode.HASH_MISMATCH


def test_an_artifact_that_is_not_the_announced_one_is_a_hash_mismatch(tmp_path: Path) -> None:
    refused = refusal(make_release(tmp_path, "1.1.0", OLD_KEY), [OLD_KEY], "ab" * 32)
    assert refused.code is RefusalCode.HASH_MISMATCH and refused.message.endswith(f"not the {'ab' * 32} announced")


def test_a_changed_manifest_does_not_verify(tmp_path: Path) -> None:
    release = make_release(tmp_path, "1.1.0", OLD_KEY)
    with tarfile.open(release) as archive:
        manifest = archive.extractfile("manifest.json").read()  # type: ignore[union-attr]
    forged = rewrite(release, tmp_path / "f.tar", {"manifest.json": manifest.replace(b'"1.1.0"', b'"9.9.9"')})
    refused = refusal(forged, [OLD_KEY])
    assert refused.code is RefusalCode.UNTRUSTED and "does not verify" in refused.message


@pytest.mark.parametrize("name", ["extra.sh", "wheels/evil-1.0-py3-none-any.whl"])
def test_a_file_the_manifest_does_not_cover_is_untrusted(tmp_path: Path, name: str) -> None:
    release = make_release(tmp_path, "1.1.0", OLD_KEY)
    refused = refusal(rewrite(release, tmp_path / "x.tar", {}, {name: b"#!/bin/sh\n"}), [OLD_KEY])
    assert refused.code is RefusalCode.UNTRUSTED and refused.message == f"{name} is not in the signed manifest"


def test_unsafe_names_and_non_tars_are_untrusted(tmp_path: Path) -> None:
    release = make_release(tmp_path, "1.1.0", OLD_KEY)
    escaping = refusal(rewrite(release, tmp_path / "e.tar", {}, {"../etc/cron.d/x": b"x"}), [OLD_KEY])
    assert escaping.code is RefusalCode.UNTRUSTED and "not a file name a release may hold" in escaping.message
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00junk" * 300)
    assert refusal(junk, [OLD_KEY]).code is RefusalCode.UNTRUSTED


def test_a_downgrade_is_refused_unless_asked_for() -> None:
    with pytest.raises(ReleaseRefused) as refused:
        check_not_older("1.0.0", "1.10.0", allow_downgrade=False)
    assert refused.value.code is RefusalCode.DOWNGRADE
    check_not_older("1.0.0", "1.10.0", allow_downgrade=True)
    check_not_older("1.10.0", "1.9.0", allow_downgrade=False)
    check_not_older("1.0.0", None, allow_downgrade=False)  # nothing installed yet


def test_extract_writes_the_verified_files_and_the_manifest(tmp_path: Path) -> None:
    release = make_release(tmp_path, "1.1.0", OLD_KEY)
    verified = verify_release(release, [trusted(OLD_KEY)])
    extract_release(release, verified, tmp_path / "x")
    files = sorted(p.relative_to(tmp_path / "x").as_posix() for p in (tmp_path / "x").rglob("*") if p.is_file())
    assert files == ["manifest.json", "requirements.lock", WHEEL]
    assert not any(p.name.endswith(".sig") for p in (tmp_path / "x").rglob("*"))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    public = generate_key_pair(tmp_path / "release.key")
    assert (tmp_path / "release.key").stat().st_mode & 0o777 == 0o600
    private = load_private_key(tmp_path / "release.key")
    assert public.read_text().strip() == public_text(private.public_key())
    with pytest.raises(ReleaseUsageError, match="never overwritten"):
        generate_key_pair(tmp_path / "release.key")


def test_trusted_keys_by_reference_base64_pem_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = OLD_KEY.public_key()
    b64 = public_text(public)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    (tmp_path / "k.pub").write_text(pem)
    monkeypatch.setenv("RELEASE_KEY", b64)
    keys = trusted_keys([b64, f"file:{tmp_path / 'k.pub'}", "env:RELEASE_KEY"])
    assert {k.key_id for k in keys} == {trusted(OLD_KEY).key_id}


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("env:NO_SUCH_RELEASE_KEY", "trusted key env:NO_SUCH_RELEASE_KEY: environment variable"),
        ("file:/nonexistent/k.pub", "trusted key file:/nonexistent/k.pub: cannot read secret file"),
        (base64.b64encode(b"short").decode(), "an Ed25519 public key is 32 bytes, this is 5"),
        ("not a key!", "neither base64 nor PEM"),
    ],
)
def test_a_trusted_key_that_does_not_resolve_names_its_reference(reference: str, message: str) -> None:
    os.environ.pop("NO_SUCH_RELEASE_KEY", None)
    with pytest.raises(ReleaseUsageError, match=message.replace("(", r"\(")):
        trusted_keys([reference])
