"""Why a release is refused, as a code the fleet and the installer report unchanged."""

from __future__ import annotations

from enum import StrEnum


class RefusalCode(StrEnum):
    UNTRUSTED = "untrusted_release"
    """Not signed by a trusted key, a signature that does not verify, no trusted keys, or not a release."""
    HASH_MISMATCH = "hash_mismatch"
    """The artifact is not the one announced, or a file differs from what the signed manifest says."""
    DOWNGRADE = "downgrade"
    """Older than the running release, and nobody said a downgrade is wanted."""


class ReleaseRefused(Exception):
    """A release that must not be installed; `code` says why in one word, the message in one line."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReleaseUsageError(ValueError):
    """A wrong request of the operator (no such file, a key file that exists): not the release's fault."""


class ReleaseBuildError(RuntimeError):
    """A release could not be built here (pip failed, no wheel came out): one line saying why."""
