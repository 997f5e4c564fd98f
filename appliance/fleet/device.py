"""Puts a device on the fleet: the MQTT link, its commands, telemetry, and the session's events."""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.agents.agent import agent_names
from appliance.agents.events import AgentHandoffEvent, RunEvent
from appliance.app import Appliance
from appliance.calls.manager import CallManager
from appliance.config import AppConfig, effective_config
from appliance.fleet.device_commands import DeviceCommands
from appliance.fleet.discovery import discovery_payload
from appliance.fleet.link import FleetLink
from appliance.fleet.telemetry import Telemetry
from appliance.fleet.topics import Topics
from appliance.ops.config_store import ConfigStore
from appliance.voice.session import VoiceSession
from appliance.voice.turn_record import TurnRecord


def connect_fleet(
    config: AppConfig,
    session: VoiceSession | None,
    stop: asyncio.Event,
    store: ConfigStore | None = None,
    appliance: Appliance | None = None,
    calls: CallManager | None = None,
) -> FleetLink:
    """The link (run it with `link.run(stop)`); a `restart` command sets `stop`."""
    commands = DeviceCommands(config, session, request_restart=stop.set, store=store, appliance=appliance, calls=calls)
    telemetry = Telemetry(session, calls=calls.snapshot if calls is not None else None)
    discovery = discovery_payload(link_topics(config), agent_names())
    link = FleetLink(config.mqtt, commands.router(), telemetry.snapshot, lambda: commands.config_version, discovery)
    link.report_config(effective_config(config), commands.config_version)
    commands.on_config.append(lambda new, version: link.report_config(effective_config(new), version))
    if calls is not None:
        calls.on_event.append(link.publish_event)
    if session is not None:
        publish_transcripts = config.privacy.publish_transcripts

        def turn(record: TurnRecord) -> None:
            event: dict[str, Any] = {"type": "turn", **record.to_json()}
            if not publish_transcripts:
                event.pop("user_text", None)
                event.pop("agent_text", None)
            link.publish_event(event)

        def agent_event(event: RunEvent) -> None:
            if isinstance(event, AgentHandoffEvent):
                link.publish_event({"type": "handoff", "from": event.old_agent, "to": event.new_agent})

        def availability(event: Any) -> None:
            link.publish_event({"type": "provider", **event.to_json()})

        session.on_turn.append(turn)
        session.runtime.on_event.append(agent_event)
        for provider in (session.providers.stt, session.providers.llm, session.providers.tts):
            listeners = getattr(provider, "on_availability", None)
            if listeners is not None:
                listeners.append(availability)
    return link


def link_topics(config: AppConfig) -> Topics:
    return Topics(config.mqtt.topic_prefix, config.mqtt.device_id, config.mqtt.group)
