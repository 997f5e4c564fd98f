"""Desired state on the device side: the merge order, when it applies, and refusals told once per version."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from appliance.fleet.commands import CommandError
from appliance.fleet.desired_state import DesiredDocument, DesiredState, merge_documents, parse_document
from appliance.fleet.topics import Topics

TOPICS = Topics("appliance", "kitchen-1", "home")
ALL, GROUP, DEVICE = (
    "appliance/all/config/desired",
    "appliance/group/home/config/desired",
    "appliance/kitchen-1/config/desired",
)


class Recorder:
    """Stands in for the device's config apply; refuses a patch naming `refuse`."""

    def __init__(self) -> None:
        self.applied: list[tuple[dict[str, Any], dict[str, int]]] = []
        self.versions: dict[str, int] = {}
        self.errors: list[tuple[str, str]] = []

    async def apply(self, patch: dict[str, Any], versions: dict[str, int]) -> dict[str, Any]:
        if "refuse" in patch:
            raise CommandError("bad_config", "no such key: refuse")
        self.applied.append((patch, versions))
        self.versions = dict(versions)
        return {"applied": sorted(patch), "restart_required": []}

    def state(self) -> DesiredState:
        return DesiredState(TOPICS, self.apply, lambda: self.versions, lambda c, m: self.errors.append((c, m)))


def doc(version: int, patch: dict[str, Any]) -> bytes:
    return json.dumps({"version": version, "patch": patch}).encode()


def test_the_narrower_scope_wins_whatever_order_the_documents_came_in() -> None:
    documents = {
        "device": DesiredDocument(version=1, patch={"endpointing": {"min_silence_ms": 300}}),
        "all": DesiredDocument(version=5, patch={"endpointing": {"min_silence_ms": 900, "max_silence_ms": 2000}}),
        "group:home": DesiredDocument(
            version=2, patch={"endpointing": {"min_silence_ms": 600}, "agent": {"name": "chat"}}
        ),
    }
    assert merge_documents(documents) == {
        "endpointing": {"min_silence_ms": 300, "max_silence_ms": 2000},
        "agent": {"name": "chat"},
    }


def test_retained_documents_at_connect_are_applied_once_merged() -> None:
    recorder = Recorder()
    desired = recorder.state()

    async def connect() -> None:
        # The broker sends the retained documents one after another right after the subscription.
        await asyncio.gather(
            desired.receive(ALL, doc(3, {"audio": {"volume": 40}}), live=False),
            desired.receive(DEVICE, doc(7, {"audio": {"volume": 70}}), live=False),
        )

    asyncio.run(connect())
    assert recorder.applied == [({"audio": {"volume": 70}}, {"all": 3, "device": 7})]


def test_only_a_newer_version_applies_again() -> None:
    recorder = Recorder()
    desired = recorder.state()

    async def scenario() -> list[dict[str, Any]]:
        first = await desired.receive(GROUP, doc(2, {"agent": {"name": "chat"}}), live=True)
        again = await desired.receive(GROUP, doc(2, {"agent": {"name": "chat"}}), live=True)
        newer = await desired.receive(GROUP, doc(3, {"agent": {"name": "chef"}}), live=True)
        return [first, again, newer]

    first, again, newer = asyncio.run(scenario())
    assert first["versions"] == {"group:home": 2} and first["applied"] == ["agent"]
    assert again["applied"] == [] and newer["versions"] == {"group:home": 3}
    assert [patch for patch, _ in recorder.applied] == [{"agent": {"name": "chat"}}, {"agent": {"name": "chef"}}]


def test_a_refused_merge_is_reported_once_and_a_newer_one_is_tried() -> None:
    recorder = Recorder()
    desired = recorder.state()

    async def scenario() -> None:
        with pytest.raises(CommandError) as refused:
            await desired.receive(DEVICE, doc(1, {"refuse": True}), live=True)
        assert refused.value.code == "bad_config"
        # A reconnect brings the same document back: refused again, but not reported again.
        with pytest.raises(CommandError):
            await desired.receive(DEVICE, doc(1, {"refuse": True}), live=False)
        assert desired.error is not None and desired.error["versions"] == {"device": 1}
        await desired.receive(DEVICE, doc(2, {"audio": {"volume": 10}}), live=True)

    asyncio.run(scenario())
    assert len(recorder.errors) == 1 and recorder.errors[0][0] == "bad_config"
    assert recorder.applied == [({"audio": {"volume": 10}}, {"device": 2})] and desired.error is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{nope", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"version": 1}', "patch"),
        (b'{"version": 0, "patch": {}}', "version"),
        (b'{"version": "2", "patch": {}}', "version"),
        (b'{"version": 1e400, "patch": {}}', "version"),
        (b'{"version": 1, "patch": {}, "extra": 1}', "extra"),
    ],
)
def test_a_bad_document_is_a_bad_desired_error_naming_what_is_wrong(payload: bytes, message: str) -> None:
    with pytest.raises(CommandError) as error:
        parse_document(payload)
    assert error.value.code == "bad_desired" and message in error.value.message


def test_a_deleted_document_is_forgotten_without_undoing_what_it_set() -> None:
    recorder = Recorder()
    desired = recorder.state()

    async def scenario() -> dict[str, Any]:
        await desired.receive(ALL, doc(1, {"audio": {"volume": 20}}), live=True)
        return await desired.receive(ALL, b"", live=True)

    result = asyncio.run(scenario())
    assert desired.documents == {} and result["applied"] == [] and len(recorder.applied) == 1
