"""The device's link to the fleet over MQTT v5 (aiomqtt, which drives paho from the asyncio loop).

On connect it publishes a retained "online" status (the birth message; the will publishes
"offline" if the device vanishes), subscribes to its command topics and desired config (device,
group, fleet), and answers each command on the MQTT v5 response topic with the correlation data
(only under the reply prefix), or on the events topic when the sender gave none (MQTT 3.1.1
clients, Home Assistant). Events (turns, handoffs, provider switches) go out as they happen; what is
published while disconnected waits in a bounded queue. Telemetry is not queued: the latest goes out
every N seconds while connected (QoS 0, retained), so an outage replays no stale figures and never
pushes turn events out of the queue. The session persists on the broker (MQTT v5 session expiry):
commands sent while the link was down are delivered when it is back. A lost broker is retried with
backoff, never a crash.
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
from appliance.fleet.commands import CommandError, CommandRouter
from appliance.fleet.desired_state import DesiredState
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
        desired: DesiredState | None = None,
        version: str = __version__,
    ) -> None:
        self.config = config
        self.version = version
        """The release this device runs, as its status says (a simulated device sets its own)."""
        self.topics = Topics(config.topic_prefix, config.device_id, config.group)
        self.router = router
        self.telemetry = telemetry
        self.config_version = config_version
        self.discovery = discovery
        """Home Assistant discovery payload, sent on connect and whenever Home Assistant comes online."""
        self.state = state
        """The device's state (state, mode, muted, volume, agent, sound device, rooms), retained on change."""
        self.desired = desired
        """The desired config documents this device follows, applied on connect and on change."""
        self.connected = asyncio.Event()
        self.on_status: Emitter[[str]] = Emitter("status")
        self.on_answered: Emitter[[str, dict[str, Any]]] = Emitter("answered")
        """A command was answered: its name and the reply (for counters such as the simulator's)."""
        self._outbox: deque[tuple[str, bytes, bool]] = deque(maxlen=config.queue_limit)
        self._wake = asyncio.Event()
        self._reported: dict[str, Any] | None = None
        self._reported_config: tuple[dict[str, Any], int] = ({}, 0)
        self._in_flight = TaskSet("mqtt commands")
        self._resume_session = False
        """Start clean the first time (old subscriptions, such as another group's, go), then resume."""

    # ----- publishing (from anywhere in the app) ---------------------------------------------------

    def report_config(self, config: dict[str, Any], version: int) -> None:
        """The effective config (secrets redacted) on config/reported, with the `config.set` version and the
        desired versions applied (and the last refusal, if any); the status with its version."""
        self._reported_config = (config, version)
        self._reported = {"version": version, "config": config, "ts": time.time()}
        if self.desired is not None:
            self._reported["desired"] = dict(self.desired.applied_versions())
            if self.desired.error is not None:
                self._reported["desired_error"] = self.desired.error
        self._queue(self.topics.config_reported, self._reported, retain=True)
        if self.connected.is_set():
            self._queue(self.topics.status, self._status("online"), retain=True)

    def publish_event(self, event: dict[str, Any]) -> None:
        self._queue(self.topics.events, {**event, "ts": time.time()})

    def _queue(self, topic: str, data: dict[str, Any], retain: bool = False) -> None:
        self._outbox.append((topic, json.dumps(data).encode(), retain))
        self._wake.set()

    def _status(self, state: str) -> dict[str, Any]:
        return {"state": state, "version": self.version, "config_version": self.config_version(),
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
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect.SessionExpiryInterval = cfg.session_expiry_s
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=f"appliance-{cfg.device_id}",
            clean_start=not self._resume_session,
            properties=connect,
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
        if self.desired is not None:
            for topic in self.desired.scopes:
                await client.subscribe(topic, qos=1)
        self._resume_session = self.config.session_expiry_s > 0
        if self.discovery is not None:
            await client.subscribe(HA_STATUS, qos=1)
            await self._announce_to_home_assistant(client)
        self.connected.set()
        self._report("connected")
        tasks = [
            asyncio.create_task(self._commands(client)),
            asyncio.create_task(self._send_outbox(client)),
            asyncio.create_task(self._telemetry_loop(client)),
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
            if self.desired is not None and self.desired.scope_of(str(message.topic)):
                self._in_flight.spawn(self._desired(client, message), f"desired-{message.topic}")
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
        self.on_answered.emit(name, reply)

    async def _desired(self, client: Any, message: Any) -> None:
        """A desired document: applied if newer; a live one (`fleet set`) with a response topic is answered."""
        assert self.desired is not None
        live = not message.retain
        try:
            result = await self.desired.receive(str(message.topic), bytes(message.payload or b""), live)
            reply: dict[str, Any] = {"ok": True, "result": result}
        except CommandError as exc:
            reply = {"ok": False, "error": {"code": exc.code, "message": exc.message}}
            self.report_config(*self._reported_config)  # the refusal shows on config/reported
        properties = message.properties
        if live and getattr(properties, "ResponseTopic", None):
            correlation = getattr(properties, "CorrelationData", None)
            reply = {"id": correlation.decode(errors="replace") if correlation else None, **reply}
            await self._answer(client, message, "config.desired", {**reply, "device": self.topics.device_id})

    async def _answer(self, client: Any, message: Any, name: str, reply: dict[str, Any]) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        incoming = message.properties
        response_topic = getattr(incoming, "ResponseTopic", None) if incoming is not None else None
        replies = self.config.replies
        if response_topic and ("+" in response_topic or "#" in response_topic):
            # Nothing can be published to a wildcard: say so on events instead of failing in a stray task.
            log.warning("command %r asked for a reply on %r, a wildcard; replying on events", name, response_topic)
            response_topic = None
        elif response_topic and not response_topic.startswith(f"{replies}/"):
            # A sender must not make the device publish wherever the device may (its own status, say).
            log.warning("command %r asked for a reply on %r, outside %s/; replying on events", name, response_topic,
                        replies)  # fmt: skip
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

    async def _telemetry_loop(self, client: Any) -> None:
        """Only the latest figures matter: QoS 0, retained (a new `fleet ls` or Home Assistant sees them
        at once), straight out rather than through the outbox."""
        while True:
            payload = json.dumps({**self.telemetry(), "ts": time.time()})
            await client.publish(self.topics.telemetry, payload, qos=0, retain=True)
            await asyncio.sleep(self.config.telemetry_interval_s)

    def _report(self, status: str) -> None:
        self.on_status.emit(status)
