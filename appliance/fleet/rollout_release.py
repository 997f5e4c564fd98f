"""What a release rollout does to one batch of devices (`fleet/rollout.py` runs the stages): the `update`
command with a signed release (issue 10), then wait until each device is back online running it.

A device of the batch fails at once when it refuses the release (`untrusted_release`, `hash_mismatch`,
`downgrade`, `update_failed`, `rolled_back`, `busy`, ...: its reply says why) and passes once its
retained status is online with the release's version. A real install restarts the service, so its reply
may never come (the process that would send it is replaced): the reply is listened for until the
deadline, not only for the operator's `--timeout`, and the status decides. One MQTT connection serves
the whole batch: the commands, their replies and every device's status.

Rolling back needs the previous release: the operator names it (`--rollback-release`, `--rollback-sha256`)
and it is sent with `allow_downgrade`; the device is rolled back once its status shows that version.
Without it a device that runs the new release stays `rollback_pending` (nothing on the fleet side holds
the old artifact), and a device that still runs what it ran before is `unchanged`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from appliance.fleet.operator import Operator
from appliance.release.artifact import read_manifest_bytes
from appliance.release.errors import ReleaseUsageError
from appliance.release.manifest import VERSION_PATTERN, ReleaseManifest

SOURCE = re.compile(r"^(https?://[^\s]+|/[^\n\r]*)$")
"""What the device's `update` command accepts: an http(s) URL or an absolute path on the device."""
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ReleaseRef:
    """A release as the devices are sent it, and the version they report once they run it."""

    source: str
    sha256: str
    version: str

    @classmethod
    def parse(cls, source: str, sha256: str | None, version: str | None, option: str = "--release") -> ReleaseRef:
        """ValueError (one line, naming the option) for anything a device would refuse as a request. The
        version comes from the release's manifest when `source` is a file here too; a URL needs it given.
        The manifest is only read, not trusted: the devices verify the signature."""
        if not SOURCE.match(source):
            raise ValueError(f"{option} must be an http(s) URL or an absolute path (on the devices), not {source!r}")
        if sha256 is None or not SHA256.match(sha256):
            raise ValueError(f"{option} needs the release's sha256, 64 hex digits ({_sibling(option, 'sha256')})")
        if version is None:
            version = _local_version(source, option)
        if not re.match(VERSION_PATTERN, version):
            raise ValueError(f"{version!r} is not a release version")
        return cls(source, sha256.lower(), version)

    @classmethod
    def from_document(cls, data: Any) -> ReleaseRef | None:
        return cls(str(data["source"]), str(data["sha256"]), str(data["version"])) if isinstance(data, dict) else None


def _sibling(option: str, name: str) -> str:
    """`--rollback-release` -> `--rollback-sha256`: the option that goes with it."""
    return option.removesuffix("release") + name


def _local_version(source: str, option: str) -> str:
    path = Path(source)
    if source.startswith(("http://", "https://")) or not path.is_file():
        raise ValueError(f"{option} {source} is not a file here: give the version it installs "
                         f"({_sibling(option, 'version')})")  # fmt: skip
    try:
        return ReleaseManifest.from_bytes(read_manifest_bytes(path)).version
    except (ReleaseUsageError, ValueError) as exc:
        raise ValueError(f"{option} {source}: {exc}") from None


async def install(
    operator: Operator, devices: list[str], release: ReleaseRef, allow_downgrade: bool, deadline_s: float
) -> dict[str, str | None]:
    """Send every device the `update` command; per device None once its status is online with the
    release's version, else why not (its refusal, or the deadline)."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    prefix = operator.mqtt.topic_prefix
    status_topics = {f"{prefix}/{device}/status": device for device in devices}
    watch = InstallWatch(release, status_topics, f"{operator.mqtt.replies}/{uuid.uuid4().hex}")
    try:
        async with operator.client() as client:
            for topic in (watch.reply_topic, *watch.status_topics):
                await client.subscribe(topic, qos=0)
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = watch.reply_topic
            request = {"release": release.source, "sha256": release.sha256, "allow_downgrade": allow_downgrade}
            for device in devices:
                payload = json.dumps({**request, "id": f"rollout-{uuid.uuid4().hex}"})
                await client.publish(operator.command_topic(device, "update"), payload, qos=1, properties=properties)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline_s):
                    async for message in client.messages:
                        watch.take(str(message.topic), _json(message.payload))
                        if len(watch.outcome) == len(devices):
                            break
    except aiomqtt.MqttError as exc:
        for device in devices:
            watch.outcome.setdefault(device, f"lost the broker {operator.mqtt.host}:{operator.mqtt.port}: {exc}")
    for device in devices:
        if device not in watch.outcome:
            said = f"it answered {watch.answered[device]}" if device in watch.answered else "no reply"
            watch.outcome[device] = f"not back online with {release.version} within {deadline_s:g} s ({said})"
    return watch.outcome


@dataclass
class InstallWatch:
    """One batch's replies and statuses, as they come: a refusal fails a device, its status passes it."""

    release: ReleaseRef
    status_topics: dict[str, str]
    """Status topic -> device."""
    reply_topic: str
    outcome: dict[str, str | None] = field(default_factory=dict)
    answered: dict[str, str] = field(default_factory=dict)
    """A device that replied ok (`installed`): its status is still to show the version."""

    def take(self, topic: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if topic in self.status_topics:
            if data.get("state") == "online" and same_version(data.get("version"), self.release.version):
                self.outcome.setdefault(self.status_topics[topic], None)
            return
        device = str(data.get("device"))
        if topic != self.reply_topic or device in self.outcome or device not in self.status_topics.values():
            return
        if data.get("ok"):
            self.answered[device] = str((data.get("result") or {}).get("outcome", "ok"))
        else:
            error = data.get("error") or {}
            self.outcome[device] = f"{error.get('code', 'refused')}: {error.get('message', '')}"


class ReleaseChange:
    """A signed release installed per device; rolled back with the previous release if one was given."""

    retained_before: tuple[str, ...] = ("status",)

    def __init__(self, operator: Operator, document: dict[str, Any]) -> None:
        self.operator = operator
        release = ReleaseRef.from_document(document["release"])
        assert release is not None, "a release rollout's document names its release"
        self.release = release
        self.rollback = ReleaseRef.from_document(document.get("rollback_release"))
        self.deadline_s = float(document["options"].get("deadline_s", 600.0))

    def remember(self, _device: str, retained: dict[str, Any]) -> dict[str, Any]:
        """The version the device runs before the update."""
        return {"version": (retained.get("status") or {}).get("version")}

    async def apply(self, batch: list[str]) -> list[str | None]:
        results = await install(self.operator, batch, self.release, allow_downgrade=False, deadline_s=self.deadline_s)
        return [results[device] for device in batch]

    async def roll_back(self, devices: list[str], records: dict[str, dict[str, Any]]) -> None:
        """Back to the version each ran: `unchanged` for one that still runs it, the rollback release for
        the others, or `rollback_pending` (with the reason in `rollback`) where that cannot be done."""
        prefix = self.operator.mqtt.topic_prefix
        now = await self.operator.retained([f"{prefix}/{device}/status" for device in devices])
        changed = []
        for device in devices:
            record = records[device]
            running = (now.get(f"{prefix}/{device}/status") or {}).get("version")
            before = record["before"].get("version")
            if running is not None and same_version(running, before):
                record["result"], record["rollback"] = "unchanged", f"still runs {before}"
            elif self.rollback is None:
                record["result"] = "rollback_pending"
                record["rollback"] = (
                    f"runs {running}; a release cannot be rolled back without the previous one: send it with "
                    f"`appliance fleet cmd {device} update` and allow_downgrade (or start with --rollback-release)"
                )
            else:
                changed.append(device)
        if not changed or self.rollback is None:
            return
        results = await install(self.operator, changed, self.rollback, allow_downgrade=True, deadline_s=self.deadline_s)
        for device in changed:
            reason, record, version = results[device], records[device], self.rollback.version
            if reason is None:
                record["result"], record["rollback"] = "rolled_back", f"back on {version}"
            else:
                record["result"], record["rollback"] = "rollback_pending", f"rollback to {version}: {reason}"


def same_version(reported: Any, version: Any) -> bool:
    """A device reports its package's `__version__`, the manifest the wheel's normalized one (1.02 is 1.2)."""
    if not isinstance(reported, str) or not isinstance(version, str):
        return False
    try:
        return Version(reported) == Version(version)
    except InvalidVersion:
        return reported == version


def release_fields(release: ReleaseRef, rollback: ReleaseRef | None) -> dict[str, Any]:
    """A release rollout's part of the retained document."""
    return {"kind": "release", "release": asdict(release), "rollback_release": asdict(rollback) if rollback else None}


def _json(payload: Any) -> Any:
    try:
        return json.loads(bytes(payload))
    except (ValueError, TypeError):
        return None
