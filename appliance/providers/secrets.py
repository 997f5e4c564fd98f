"""Secrets by reference: `env:NAME` or `file:/path`. A secret's value is never printed or logged."""

from __future__ import annotations

import os
from pathlib import Path


class SecretError(ValueError):
    """A secret reference that cannot be resolved; the message names the reference, not a value."""


def resolve_secret(reference: str | None) -> str | None:
    if reference is None or reference == "":
        return None
    if reference.startswith("env:"):
        name = reference[4:]
        value = os.environ.get(name)
        if not value:
            raise SecretError(f"environment variable {name} is not set")
        return value
    if reference.startswith("file:"):
        path = Path(reference[5:])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror or exc}") from None
    return reference
