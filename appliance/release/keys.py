"""Ed25519 release keys: make a pair, load the private one, read trusted public ones by reference.

A public key is written as one line of base64 (the 32 raw bytes), which fits a config value, an
environment variable or a file; PEM (`-----BEGIN PUBLIC KEY-----`) is read too. Trusted keys are given
like every secret (`file:/path`, `env:NAME` or the value itself), and there may be several, so a new
key can be trusted before the old one stops signing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.providers.secrets import SecretError, resolve_secret
from appliance.release.errors import ReleaseUsageError


@dataclass(frozen=True)
class TrustedKey:
    key: Ed25519PublicKey
    key_id: str
    """The first 16 hex digits of the sha256 of the raw key: names a key in signatures and messages."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def parse_public_key(text: str) -> TrustedKey:
    """A public key from base64 of its 32 raw bytes or from PEM; ValueError says what is wrong."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            loaded = serialization.load_pem_public_key(text.encode())
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("not a PEM public key") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return TrustedKey(loaded, key_id(loaded))
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("neither base64 nor PEM") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
    public = Ed25519PublicKey.from_public_bytes(raw)
    return TrustedKey(public, key_id(public))


def _describe(reference: str) -> str:
    """How a reference is named in an error: where it points, never a value."""
    return reference if reference.startswith(("env:", "file:")) else f"{reference[:12]}..."


def trusted_keys(references: Sequence[str]) -> list[TrustedKey]:
    """The keys a release may be signed by; ReleaseUsageError names the reference that does not resolve."""
    keys = []
    for reference in references:
        try:
            text = resolve_secret(reference)
        except SecretError as exc:
            raise ReleaseUsageError(f"trusted key {_describe(reference)}: {exc}") from None
        if not text:
            raise ReleaseUsageError(f"trusted key {_describe(reference)} is empty")
        try:
            keys.append(parse_public_key(text))
        except ValueError as exc:
            raise ReleaseUsageError(f"trusted key {_describe(reference)}: {exc}") from None
    return keys


def generate_key_pair(private_path: Path) -> Path:
    """A new key: the private one at `private_path` (mode 0600, never overwritten), the public one beside
    it as `<name>.pub`. Returns the public key's path."""
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise ReleaseUsageError(f"{path} exists: a key is never overwritten")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ReleaseUsageError(f"cannot write {private_path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path.write_text(public_text(private.public_key()) + "\n")
    return public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReleaseUsageError(f"cannot read key {path}: {exc.strerror or exc}") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ReleaseUsageError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ReleaseUsageError(f"{path} is not an Ed25519 private key")
    return private
