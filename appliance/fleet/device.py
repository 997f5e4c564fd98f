"""Puts a device on the fleet: the MQTT link, its commands, telemetry, and the session's events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appliance import __version__
from appliance.agents.events import AgentHandoffEvent, RunEvent
from appliance.agents.registry import agent_names
from appliance.config import AppConfig, effective_config
from appliance.fleet.config_store import ConfigStore
from appliance.fleet.control_surface import ControlSurface
from appliance.fleet.desired_state import DesiredState
from appliance.fleet.device_commands import DeviceCommands
from appliance.fleet.discovery import discovery_payload
from appliance.fleet.events import call_event, error_event, handoff_event, provider_event, turn_event
from appliance.fleet.link import FleetLink
from appliance.fleet.telemetry import Telemetry
from appliance.fleet.topics import Topics


def connect_fleet(
    config: AppConfig,
    control: ControlSurface | None,
    request_restart: Callable[[], None],
    store: ConfigStore | None = None,
    sound_device: Callable[[], str] | None = None,
    version: str = __version__,
) -> FleetLink:
    """The link (run it with `link.run(stop)`); a `restart` command calls `request_restart`.
    `sound_device` tells the state of the microphone and speaker (None: the box has none). `version` is
    the release the device runs: this package's, but for a simulated device that "installed" another."""
    calls = control.calls if control is not None else None
    commands = DeviceCommands(config, control, request_restart=request_restart, store=store, version=version)
    telemetry = Telemetry(control, calls=calls.snapshot if calls is not None else None)
    headless = control is None or control.headless
    discovery = discovery_payload(link_topics(config), agent_names(), has_speaker=not headless, version=version)
    desired = DesiredState(
        link_topics(config),
        commands.apply_desired,
        lambda: commands.desired_versions,
        on_error=lambda code, message: link.publish_event(error_event("desired config", message, code)),
    )
    link = FleetLink(
        config.mqtt,
        commands.router(),
        telemetry.snapshot,
        lambda: commands.config_version,
        discovery,
        state=lambda: device_state(control, sound_device),
        desired=desired,
        version=version,
    )
    link.report_config(effective_config(config), commands.config_version)
    if store is not None and store.fallback is not None:
        link.publish_event(error_event("config", store.fallback, "config_fallback"))  # out once connected
    commands.on_config.connect(lambda new, version: link.report_config(effective_config(new), version))
    if calls is not None:
        calls.on_event.connect(lambda event: link.publish_event(call_event(event)))
    if control is not None:
        publish_transcripts = config.privacy.publish_transcripts

        def agent_event(event: RunEvent) -> None:
            if isinstance(event, AgentHandoffEvent):
                link.publish_event(handoff_event(event.old_agent, event.new_agent))

        control.on_turn(lambda record: link.publish_event(turn_event(record, publish_transcripts=publish_transcripts)))
        control.on_agent_event(agent_event)
        control.on_availability(lambda change: link.publish_event(provider_event(change)))
    return link


def device_state(control: ControlSurface | None, sound_device: Callable[[], str] | None) -> dict[str, Any]:
    """The retained `state` topic's payload: what changes when someone acts on the box."""
    state: dict[str, Any] = {"state": "headless", "sound_device": sound_device() if sound_device else "none"}
    if control is not None:
        now = control.state()
        state.update(state=now.state, mode=now.mode, muted=now.muted, volume=now.volume, agent=now.agent)
        if control.calls is not None:
            state["rooms"] = [
                {"room": c.name, "caller": c.caller, "conversation": c.describe()["conversation"]}
                for c in control.calls.calls
            ]
    return state


def link_topics(config: AppConfig) -> Topics:
    return Topics(config.mqtt.topic_prefix, config.mqtt.device_id, config.mqtt.group)
