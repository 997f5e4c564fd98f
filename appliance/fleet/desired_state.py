"""Desired state: the operator's config for a device, kept by the broker so an offline box gets it later.

Three retained documents may speak to one device: the fleet's (`<prefix>/all/config/desired`), its
group's (`<prefix>/group/<group>/config/desired`) and its own (`<prefix>/<id>/config/desired`), each
`{"version": N, "patch": {...}}`. The device merges them (all < group < device: the narrower wins) and
applies the result, as `config.set` would (same checks, live apply, rollback), whenever one of them is
newer than the version of that scope it applied last. It remembers the applied versions with the config
(so a restart does not apply again) and reports them on `config/reported`.

A document that cannot be applied (a forbidden key, a config the box could not start with) is refused
once per version with an error event; a newer version is tried again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.config import deep_merge
from appliance.fleet.commands import MAX_PAYLOAD_BYTES, CommandError, parse_json_object
from appliance.fleet.topics import Topics

log = logging.getLogger(__name__)

SETTLE_S = 0.3
"""After connecting, the broker sends the retained documents one by one: wait this long for the others,
so the merged result is applied once and not document by document."""


class DesiredDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: int = Field(ge=1, le=2**53)
    patch: dict[str, Any]


@dataclass(frozen=True)
class Received:
    scope: str
    """"all", "group:<name>" or "device"."""
    live: bool
    """Published while the device was connected (not a retained copy sent at subscribe)."""


ApplyPatch = Callable[[dict[str, Any], dict[str, int]], Awaitable[dict[str, Any]]]
"""Apply a merged patch and record the versions it came from (raises CommandError)."""


def desired_topics(topics: Topics) -> dict[str, str]:
    """Topic -> scope, for the three documents a device follows."""
    return {
        f"{topics.prefix}/all/config/desired": "all",
        f"{topics.prefix}/group/{topics.group}/config/desired": f"group:{topics.group}",
        f"{topics.prefix}/{topics.device_id}/config/desired": "device",
    }


def merge_documents(documents: Mapping[str, DesiredDocument]) -> dict[str, Any]:
    return merge_patches({scope: document.patch for scope, document in documents.items()})


def merge_patches(patches: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Patches by scope: the fleet's, then the group's, then the device's; the narrower scope wins."""
    merged: dict[str, Any] = {}
    for scope in sorted(patches, key=_breadth, reverse=True):
        merged = deep_merge(merged, patches[scope])
    return merged


def _breadth(scope: str) -> int:
    return 2 if scope == "all" else 1 if scope.startswith("group:") else 0


def parse_document(payload: bytes) -> DesiredDocument:
    """A desired document, or CommandError("bad_desired", ...) saying what is wrong with it."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError("bad_desired", f"document of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    data = parse_json_object(payload, code="bad_desired")
    try:
        return DesiredDocument.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise CommandError("bad_desired", f"{where}: {first['msg']}") from None


class DesiredState:
    """Follows the desired documents of one device and applies their merge when one of them is newer."""

    def __init__(
        self,
        topics: Topics,
        apply: ApplyPatch,
        applied_versions: Callable[[], Mapping[str, int]],
        on_error: Callable[[str, str], None],
    ) -> None:
        self.scopes = desired_topics(topics)
        self.apply = apply
        self.applied_versions = applied_versions
        self.on_error = on_error
        """(code, message) of a document refused: the link puts it on events."""
        self.documents: dict[str, DesiredDocument] = {}
        self.refused: dict[str, int] = {}
        """The versions whose merge was refused, so a reconnect does not refuse them again and again."""
        self.error: dict[str, Any] | None = None
        """The last refusal, until a merge applies (reported on config/reported)."""
        self._lock = asyncio.Lock()

    def scope_of(self, topic: str) -> str | None:
        return self.scopes.get(topic)

    async def receive(self, topic: str, payload: bytes, live: bool) -> dict[str, Any]:
        """Take one document (an empty payload deletes it) and apply the merge if it is newer.
        Returns the result for a reply: `{"applied_versions", ...}` or raises CommandError."""
        scope = self.scopes[topic]
        if not payload:
            # The operator deleted the document: what it set stays (there is no "unset" in a patch).
            self.documents.pop(scope, None)
            return {"versions": self.versions(), "applied": [], "restart_required": []}
        try:
            self.documents[scope] = parse_document(payload)
        except CommandError as exc:
            self._refuse(exc, f"{scope} desired config")
            raise
        if not live:
            await asyncio.sleep(SETTLE_S)
        async with self._lock:
            return await self._apply_if_newer()

    def versions(self) -> dict[str, int]:
        return {scope: doc.version for scope, doc in self.documents.items()}

    def pending(self) -> bool:
        """Is any document newer than what was applied (and not already refused)?"""
        applied, versions = self.applied_versions(), self.versions()
        newer = any(version > applied.get(scope, 0) for scope, version in versions.items())
        return newer and versions != self.refused

    async def _apply_if_newer(self) -> dict[str, Any]:
        versions = self.versions()
        if not self.pending():
            if versions == self.refused and self.error is not None:
                raise CommandError(str(self.error["code"]), str(self.error["message"]))
            return {"versions": dict(self.applied_versions()), "applied": [], "restart_required": []}
        try:
            result = await self.apply(merge_documents(self.documents), versions)
        except CommandError as exc:
            self.refused = versions
            self._refuse(exc, f"desired config {json.dumps(versions, sort_keys=True)}")
            raise
        self.refused, self.error = {}, None
        log.info("desired config %s applied", json.dumps(versions, sort_keys=True))
        return {"versions": versions, **result}

    def _refuse(self, exc: CommandError, what: str) -> None:
        self.error = {"code": exc.code, "message": exc.message, "versions": self.versions()}
        log.warning("%s refused: %s: %r", what, exc.code, exc.message)
        self.on_error(exc.code, f"{what} refused: {exc.message}")
