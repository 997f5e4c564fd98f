"""Errors of the model store; every message is one line fit for stderr."""

from __future__ import annotations


class ModelStoreError(Exception):
    """Base of the model store's errors; every message is one line fit for stderr."""


class ModelMissingError(ModelStoreError):
    """A model an engine needs is absent or incomplete; the message says which command fixes it."""


class ModelFetchError(ModelStoreError):
    """A file could not be fetched (no source, bad bytes, pip failed); names the file and why."""
