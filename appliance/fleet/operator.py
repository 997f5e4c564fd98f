"""The fleet side: `appliance fleet ls|get|set|cmd|decommission`, for operators and scripts.

Devices are found from their retained status (and, for "last seen", their retained state and
telemetry); a command goes to one device (`ID`), a group (`group:NAME`) or everyone (`all`), with a
private response topic under the reply prefix, and the replies that arrive within the timeout are
shown (as a table, or JSON lines with --json). Config changes are desired state: a retained document
per target that devices apply when they come online, and answer at once when they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import tomllib
import uuid
from dataclasses import dataclass
from typing import Any

from appliance.config import MqttConfig, deep_merge
from appliance.fleet.desired_state import desired_topics, merge_patches
from appliance.fleet.remote_keys import dotted_keys
from appliance.fleet.topics import Topics, latest_release_topic
from appliance.providers.secrets import resolve_secret

RETAINED_QUIET_S = 0.3
"""Listening for retained messages goes on while they arrive closer together than this."""
RETAINED_CAP_S = 30.0


class FleetError(RuntimeError):
    """One line, for the CLI."""


@dataclass
class Operator:
    mqtt: MqttConfig
    timeout_s: float = 3.0

    def client(self) -> Any:
        """A new MQTT v5 client for this broker and account (not yet connected)."""
        import aiomqtt

        tls = None
        if self.mqtt.tls_ca or self.mqtt.tls_cert:
            tls = aiomqtt.TLSParameters(
                ca_certs=self.mqtt.tls_ca, certfile=self.mqtt.tls_cert, keyfile=self.mqtt.tls_key
            )
        return aiomqtt.Client(
            self.mqtt.host,
            self.mqtt.port,
            username=self.mqtt.username,
            password=resolve_secret(self.mqtt.password),
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=tls,
            identifier=f"appliance-fleet-{uuid.uuid4().hex[:8]}",
        )

    async def devices(self, listen_s: float = 1.0) -> list[dict[str, Any]]:
        """Every device that has a retained status, newest view of each; `last_seen` is the time of the
        newest retained message it published (status, state or telemetry), not of its connect."""
        prefix = self.mqtt.topic_prefix
        kinds = ("status", "state", "telemetry")
        retained = await self.retained([f"{prefix}/+/{kind}" for kind in kinds], listen_s)
        found: dict[str, dict[str, Any]] = {}
        for topic, data in retained.items():
            device, kind = topic.split("/")[-2:]
            if kind == "status" and isinstance(data, dict):
                found[device] = {"id": device, **data}
        for device, row in found.items():
            stamps = [retained.get(f"{prefix}/{device}/{kind}") for kind in kinds]
            row["last_seen"] = max((float(d["ts"]) for d in stamps if isinstance(d, dict) and _is_time(d.get("ts"))),
                                   default=None)  # fmt: skip
        return sorted(found.values(), key=lambda d: d["id"])

    async def retained(self, topic_filters: list[str], listen_s: float = 1.0) -> dict[str, Any]:
        """The retained messages on these filters, by topic (JSON; None for one that is not).

        The broker sends them right after each subscription, so this listens `listen_s`, and longer while
        they keep coming (thousands of devices take more than a second to list), up to RETAINED_CAP_S; it
        returns at once when every filter is a plain topic and each has been received."""
        import aiomqtt

        found: dict[str, Any] = {}
        exact = {f for f in topic_filters if "+" not in f and "#" not in f}
        everything_exact = len(exact) == len(topic_filters)
        try:
            async with self.client() as client:
                for topic_filter in topic_filters:
                    # QoS 0: a broker queues at most ~1,000 unacknowledged QoS 1 messages per client (Mosquitto's
                    # max_queued_messages, EMQX's mqueue) and drops the rest, so a fleet of 2,000 listed at QoS 1
                    # showed 1,020 devices. A snapshot read on a live connection loses nothing at QoS 0.
                    await client.subscribe(topic_filter, qos=0)
                loop = asyncio.get_running_loop()
                started = last = loop.time()
                messages = aiter(client.messages)
                while not (everything_exact and exact <= found.keys()):
                    now = loop.time()
                    wait = min(max(started + listen_s, last + RETAINED_QUIET_S), started + RETAINED_CAP_S) - now
                    if wait <= 0:
                        break
                    try:
                        message = await asyncio.wait_for(anext(messages), wait)
                    except TimeoutError:
                        break
                    if not message.retain or not message.payload:
                        continue
                    last = loop.time()
                    try:
                        found[str(message.topic)] = json.loads(bytes(message.payload))
                    except ValueError:
                        found[str(message.topic)] = None
        except aiomqtt.MqttError as exc:
            raise FleetError(f"cannot reach the broker {self.mqtt.host}:{self.mqtt.port}: {exc}") from None
        return found

    def desired_topic(self, target: str) -> str:
        return self.command_topic(target, "x").replace("/cmd/x", "/config/desired")

    async def set_desired(
        self, target: str, patch: dict[str, Any], version: int | None = None, expect: set[str] | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Merge `patch` into the target's retained desired document with a newer version; returns the new
        document and the replies of the devices online (offline ones apply it when they come back).
        Two operators changing one target at the same instant: the later document wins."""
        topic = self.desired_topic(target)
        current = (await self.retained([topic], listen_s=min(1.0, self.timeout_s))).get(topic)
        old_version, old_patch = 0, {}
        if isinstance(current, dict) and isinstance(current.get("patch"), dict):
            old_version, old_patch = int(current.get("version", 0)), current["patch"]
        if version is not None and version <= old_version:
            raise FleetError(f"version {version} is not newer than the desired version {old_version} of {target}")
        document = {"version": version or old_version + 1, "patch": deep_merge(old_patch, patch)}
        replies = await self._publish_and_collect(target, topic, document, expect, retain=True)
        return document, replies

    async def announce_release(self, announcement: dict[str, Any]) -> str:
        """The newest release, retained where Home Assistant's update entities read it; returns the topic."""
        import aiomqtt

        topic = latest_release_topic(self.mqtt.topic_prefix)
        try:
            async with self.client() as client:
                await client.publish(topic, json.dumps(announcement), qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            raise FleetError(f"cannot reach the broker {self.mqtt.host}:{self.mqtt.port}: {exc}") from None
        return topic

    async def decommission(self, device_id: str) -> list[str]:
        """Clear every retained topic of a box (and its Home Assistant device); returns the topics cleared."""
        import aiomqtt

        prefix = self.mqtt.topic_prefix
        kinds = ("status", "state", "telemetry", "config/reported", "config/desired")
        topics = [f"{prefix}/{device_id}/{kind}" for kind in kinds] + [f"homeassistant/device/{device_id}/config"]
        try:
            async with self.client() as client:
                for topic in topics:
                    await client.publish(topic, b"", qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            raise FleetError(f"cannot reach the broker {self.mqtt.host}:{self.mqtt.port}: {exc}") from None
        return topics

    def command_topic(self, target: str, name: str) -> str:
        prefix = self.mqtt.topic_prefix
        if target == "all":
            return f"{prefix}/all/cmd/{name}"
        if target.startswith("group:"):
            return f"{prefix}/group/{target[6:]}/cmd/{name}"
        return f"{prefix}/{target}/cmd/{name}"

    async def command(
        self, target: str, name: str, args: dict[str, Any], expect: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """Send one command; the replies within the timeout (one device: the first one; with `expect`,
        no longer than until every expected device has answered)."""
        payload = {**args, "id": f"fleet-{uuid.uuid4().hex}"}
        return await self._publish_and_collect(target, self.command_topic(target, name), payload, expect)

    async def _publish_and_collect(
        self, target: str, topic: str, payload: dict[str, Any], expect: set[str] | None, retain: bool = False
    ) -> list[dict[str, Any]]:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        reply_topic = f"{self.mqtt.replies}/{uuid.uuid4().hex}"
        single = target != "all" and not target.startswith("group:")
        replies: list[dict[str, Any]] = []
        try:
            async with self.client() as client:
                await client.subscribe(reply_topic, qos=0)  # thousands of replies at once: see `retained`
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.ResponseTopic = reply_topic
                await client.publish(topic, json.dumps(payload), qos=1, retain=retain, properties=properties)
                if retain and expect is not None and not expect:
                    return replies  # desired state with nobody online: it waits on the broker, not for us
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.timeout_s):
                        async for message in client.messages:
                            replies.append(json.loads(bytes(message.payload)))
                            answered = {str(r.get("device")) for r in replies}
                            if single or (expect and expect <= answered):
                                break
        except aiomqtt.MqttError as exc:
            raise FleetError(f"cannot reach the broker {self.mqtt.host}:{self.mqtt.port}: {exc}") from None
        return replies


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`endpointing.min_silence_ms=400 agent.name=chat` -> a nested patch (values as TOML literals)."""
    flat: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise FleetError(f"{item!r} is not key=value")
        try:
            flat[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            flat[key] = raw
    return nested(flat)


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """`{"audio.volume": 35}` -> `{"audio": {"volume": 35}}` (a patch)."""
    patch: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = patch
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return patch


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe_age(ts: float | None) -> str:
    if not ts:
        return "-"
    seconds = max(0, time.time() - ts)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def desired_vs_reported(device: dict[str, Any], retained: dict[str, Any], prefix: str) -> dict[str, Any]:
    """What the operator asked of one device (its merged desired documents) against what it reports."""
    device_id = str(device["id"])
    topics = desired_topics(Topics(prefix, device_id, str(device.get("group", ""))))
    documents = {scope: retained[t] for t, scope in topics.items() if isinstance(retained.get(t), dict)}
    wanted = {s: int(d.get("version", 0)) for s, d in documents.items()}
    merged = merge_patches({s: d["patch"] for s, d in documents.items() if isinstance(d.get("patch"), dict)})
    found = retained.get(f"{prefix}/{device_id}/config/reported")
    reported: dict[str, Any] = found if isinstance(found, dict) else {}
    applied: dict[str, Any] = reported["desired"] if isinstance(reported.get("desired"), dict) else {}
    config: dict[str, Any] = reported["config"] if isinstance(reported.get("config"), dict) else {}
    differing = [key for key, value in dotted_keys(merged) if lookup(config, key) != value]
    return {
        "device": device_id,
        "state": device.get("state", "-"),
        "desired": {"versions": wanted, "patch": merged},
        "reported": {"versions": applied, "error": reported.get("desired_error"), "ts": reported.get("ts")},
        "in_sync": all(int(applied.get(s, 0)) >= v for s, v in wanted.items()),
        "differing": differing,
        "version": reported.get("version"),
        "config": config,
    }


def lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
