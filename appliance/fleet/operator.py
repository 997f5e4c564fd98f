"""The fleet side: `appliance fleet ls|get|set|cmd`, for operators and scripts.

Devices are found from their retained status; a command goes to one device (`ID`), a group
(`group:NAME`) or everyone (`all`), with a private response topic, and the replies that arrive
within the timeout are shown (as a table, or JSON lines with --json).
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

from appliance.config import MqttConfig
from appliance.providers.secrets import resolve_secret


class FleetError(RuntimeError):
    """One line, for the CLI."""


@dataclass
class Operator:
    mqtt: MqttConfig
    timeout_s: float = 3.0

    def _client(self) -> Any:
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
        """Every device that has a retained status, newest view of each."""
        import aiomqtt

        found: dict[str, dict[str, Any]] = {}
        try:
            async with self._client() as client:
                await client.subscribe(f"{self.mqtt.topic_prefix}/+/status", qos=1)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(listen_s):
                        async for message in client.messages:
                            device = str(message.topic).split("/")[-2]
                            with contextlib.suppress(ValueError):
                                found[device] = {"id": device, **json.loads(bytes(message.payload))}
        except aiomqtt.MqttError as exc:
            raise FleetError(f"cannot reach the broker {self.mqtt.host}:{self.mqtt.port}: {exc}") from None
        return sorted(found.values(), key=lambda d: d["id"])

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
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        reply_topic = f"{self.mqtt.topic_prefix}/fleet-replies/{uuid.uuid4().hex}"
        command_id = f"fleet-{uuid.uuid4().hex}"
        single = target != "all" and not target.startswith("group:")
        replies: list[dict[str, Any]] = []
        try:
            async with self._client() as client:
                await client.subscribe(reply_topic, qos=1)
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.ResponseTopic = reply_topic
                payload = json.dumps({**args, "id": command_id})
                await client.publish(self.command_topic(target, name), payload, qos=1, properties=properties)
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
    patch: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise FleetError(f"{item!r} is not key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = patch
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return patch


def describe_age(ts: float | None) -> str:
    if not ts:
        return "-"
    seconds = max(0, time.time() - ts)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"
