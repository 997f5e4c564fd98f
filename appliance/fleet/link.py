"""The device's link to the fleet over MQTT v5 (aiomqtt, which drives paho from the asyncio loop).

On connect it publishes a retained "online" status (the birth message; the will publishes
"offline" if the device vanishes), subscribes to its command topics (device, group, fleet),
and answers each command on the MQTT v5 response topic with the correlation data, or on the
events topic when the sender gave none (MQTT 3.1.1 clients). Telemetry goes out every N
seconds; events (turns, handoffs, provider switches) as they happen. What is published while
disconnected waits in a bounded queue. A lost broker is retried with backoff, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from appliance import __version__
from appliance.aio import Backoff, TaskSet, cancel_and_wait
from appliance.config import MqttConfig
from appliance.emitter import Emitter
from appliance.fleet.commands import CommandRouter
from appliance.fleet.discovery import discovery_topic
from appliance.fleet.events import error_event
from appliance.fleet.topics import Topics
from appliance.providers.secrets import resolve_secret

log = logging.getLogger(__name__)

STATE_POLL_S = 0.25
"""How soon a change of state shows on the retained state topic."""

HA_STATUS = "homeassistant/status"


DISCONNECT_S = 5.0
"""How long closing the connection may take."""


class FleetLink:
    def __init__(
        self,
        config: MqttConfig,
        router: CommandRouter,
        telemetry: Callable[[], dict[str, Any]],
        config_version: Callable[[], int] = lambda: 0,
        discovery: dict[str, Any] | None = None,
        state: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.topic_prefix, config.device_id, config.group)
        self.router = router
        self.telemetry = telemetry
        self.config_version = config_version
        self.discovery = discovery
        """Home Assistant discovery payload, sent on connect and whenever Home Assistant comes online."""
        self.state = state
        """The device's state (state, mode, muted, volume, agent, sound device, rooms), retained on change."""
        self.connected = asyncio.Event()
        self.on_status: Emitter[[str]] = Emitter("status")
        self._outbox: deque[tuple[str, bytes, bool]] = deque(maxlen=config.queue_limit)
        self._wake = asyncio.Event()
        self._reported: dict[str, Any] | None = None
        self._in_flight = TaskSet("mqtt commands")

    # ----- publishing (from anywhere in the app) ---------------------------------------------------

    def report_config(self, config: dict[str, Any], version: int) -> None:
        """The effective config (secrets redacted) on config/reported, and the status with its version."""
        self._reported = {"version": version, "config": config, "ts": time.time()}
        self._queue(self.topics.config_reported, self._reported, retain=True)
        if self.connected.is_set():
            self._queue(self.topics.status, self._status("online"), retain=True)

    def publish_event(self, event: dict[str, Any]) -> None:
        self._queue(self.topics.events, {**event, "ts": time.time()})

    def _queue(self, topic: str, data: dict[str, Any], retain: bool = False) -> None:
        self._outbox.append((topic, json.dumps(data).encode(), retain))
        self._wake.set()

    def _status(self, state: str) -> dict[str, Any]:
        return {"state": state, "version": __version__, "config_version": self.config_version(),
                "group": self.config.group, "ts": time.time()}  # fmt: skip

    # ----- the connection -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        import aiomqtt

        backoff = Backoff(1.0, 30.0)
        while not stop.is_set():
            try:
                client = self._client(aiomqtt)
                await client.__aenter__()
                try:
                    backoff.reset()
                    await self._session(client, stop)
                finally:
                    # aiomqtt waits for the broker's side of a clean disconnect with no deadline; a stop must
                    # not hang on it (the offline status is already out by then).
                    with contextlib.suppress(Exception, TimeoutError):
                        await asyncio.wait_for(client.__aexit__(None, None, None), DISCONNECT_S)
            except Exception as exc:  # a broker problem, or a bug: either way the device stays up
                self.connected.clear()
                if not isinstance(exc, aiomqtt.MqttError):
                    log.exception("MQTT link failed")
                self._report(f"disconnected: {exc}")
                delay = backoff.next()
                log.warning(
                    "MQTT broker %s:%d: %s (retrying in %.1f s)", self.config.host, self.config.port, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    def _client(self, aiomqtt: Any) -> Any:
        cfg = self.config
        will = aiomqtt.Will(self.topics.status, json.dumps(self._status("offline")), qos=1, retain=True)
        tls = None
        if cfg.tls_ca or cfg.tls_cert:
            tls = aiomqtt.TLSParameters(ca_certs=cfg.tls_ca, certfile=cfg.tls_cert, keyfile=cfg.tls_key)
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=f"appliance-{cfg.device_id}",
            username=cfg.username,
            password=resolve_secret(cfg.password),
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=cfg.keepalive_s,
            tls_params=tls,
            timeout=10,
        )

    async def _session(self, client: Any, stop: asyncio.Event) -> None:
        await client.publish(self.topics.status, json.dumps(self._status("online")), qos=1, retain=True)
        if self._reported is not None:  # a restarted broker may have lost the retained copy
            await client.publish(self.topics.config_reported, json.dumps(self._reported), qos=1, retain=True)
        for topic_filter in self.topics.command_filters:
            await client.subscribe(topic_filter, qos=1)
        if self.discovery is not None:
            await client.subscribe(HA_STATUS, qos=1)
            await self._announce_to_home_assistant(client)
        self.connected.set()
        self._report("connected")
        tasks = [
            asyncio.create_task(self._commands(client)),
            asyncio.create_task(self._send_outbox(client)),
            asyncio.create_task(self._telemetry_loop()),
            asyncio.create_task(self._state_loop(client)),
        ]
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # A clean stop: say so ourselves (the will only fires on an unclean one).
            await client.publish(self.topics.status, json.dumps(self._status("offline")), qos=1, retain=True)
        finally:
            await cancel_and_wait([*tasks, stopping, *self._in_flight])
            self.connected.clear()

    async def _announce_to_home_assistant(self, client: Any) -> None:
        topic = discovery_topic(self.topics.device_id)
        await client.publish(topic, json.dumps(self.discovery), qos=1, retain=True)

    async def _commands(self, client: Any) -> None:
        async for message in client.messages:
            if str(message.topic) == HA_STATUS:
                if bytes(message.payload or b"").strip() == b"online":  # Home Assistant (re)started
                    await self._announce_to_home_assistant(client)
                continue
            if message.retain:
                # A retained command would run again at every connect (a retained `restart`: a restart loop).
                name = Topics.command_name(str(message.topic))
                log.warning("retained command %s ignored", name)
                self.publish_event(error_event("mqtt", f"retained command {name!r} ignored: commands are not retained"))
                continue
            # Each command in its own task: a slow one (an update, joining a room) must not hold up a ping.
            self._in_flight.spawn(self._command(client, message), f"command-{message.topic}")

    async def _command(self, client: Any, message: Any) -> None:
        name = Topics.command_name(str(message.topic))
        reply = await self.router.handle(name, bytes(message.payload or b""))
        reply = {**reply, "device": self.topics.device_id}  # group and fleet-wide commands get many replies
        await self._answer(client, message, name, reply)

    async def _answer(self, client: Any, message: Any, name: str, reply: dict[str, Any]) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        incoming = message.properties
        response_topic = getattr(incoming, "ResponseTopic", None) if incoming is not None else None
        if response_topic and ("+" in response_topic or "#" in response_topic):
            # Nothing can be published to a wildcard: say so on events instead of failing in a stray task.
            log.warning("command %r asked for a reply on %r, a wildcard; replying on events", name, response_topic)
            response_topic = None
        if not response_topic:
            await client.publish(self.topics.events, json.dumps(
                {"type": "command_reply", "command": name, "reply": reply, "ts": time.time()}), qos=1)  # fmt: skip
            return
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        correlation = getattr(incoming, "CorrelationData", None)
        if correlation is not None:
            properties.CorrelationData = correlation
        await client.publish(response_topic, json.dumps(reply), qos=1, properties=properties)

    async def _send_outbox(self, client: Any) -> None:
        while True:
            while self._outbox:
                topic, payload, retain = self._outbox[0]
                await client.publish(topic, payload, qos=1, retain=retain)
                self._outbox.popleft()  # only once it went out: a drop mid-publish keeps it queued
            self._wake.clear()
            await self._wake.wait()

    async def _state_loop(self, client: Any) -> None:
        """Publish the state (retained) at connect and within STATE_POLL_S of any change: a toggle from
        Home Assistant shows at once, and survives its restarts."""
        if self.state is None:
            return
        published: dict[str, Any] | None = None
        while True:
            state = self.state()
            if state != published:
                await client.publish(self.topics.state, json.dumps({**state, "ts": time.time()}), qos=1, retain=True)
                published = state
            await asyncio.sleep(STATE_POLL_S)

    async def _telemetry_loop(self) -> None:
        while True:
            self._queue(self.topics.telemetry, {**self.telemetry(), "ts": time.time()})
            await asyncio.sleep(self.config.telemetry_interval_s)

    def _report(self, status: str) -> None:
        self.on_status.emit(status)
