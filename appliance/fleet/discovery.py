"""Home Assistant MQTT discovery: the device appears in Home Assistant by itself.

One device-based discovery message (`homeassistant/device/<id>/config`, retained) describes every
entity: the state (an enum sensor), the agent select, the mute switch and the volume number read the
retained `state` topic (a toggle shows at once and survives Home Assistant's restarts); the latency
sensor reads telemetry; a restart button; an update entity with the installed release (from the
status) and the newest one (the retained release announcement, `appliance fleet announce`). A headless
box has no microphone and speaker of its own: no mute, no volume. Availability follows the retained
status topic. Commands from Home Assistant get a fresh id each (a template with the time), since a
repeated id is not run twice.
"""

from __future__ import annotations

from typing import Any

from appliance import __version__
from appliance.fleet.topics import Topics, latest_release_topic

FRESH_ID = '"id": "ha-{{ now().timestamp() }}"'


def discovery_topic(device_id: str) -> str:
    return f"homeassistant/device/{device_id}/config"


STATES = ["listening", "thinking", "speaking", "headless"]
"""Every value the state sensor can show (an `enum` sensor refuses any other)."""


def discovery_payload(
    topics: Topics, agents: list[str], *, has_speaker: bool = True, version: str = __version__
) -> dict[str, Any]:
    """`has_speaker`: a box without its own microphone and speaker (headless) gets no mute and volume;
    `version`: the release it runs."""
    device = topics.device_id
    slug = device.replace("-", "_")
    state = topics.state

    def command(name: str) -> str:
        return f"{topics.prefix}/{device}/cmd/{name}"

    def entity(key: str, platform: str, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "p": platform,
            "name": name,
            "unique_id": f"{device}_{key}",
            "default_entity_id": f"{platform}.{slug}_{key}",
            **extra,
        }

    components: dict[str, Any] = {
        "state": entity(
            "state", "sensor", "State", stat_t=state, dev_cla="enum", options=STATES, val_tpl="{{ value_json.state }}"
        ),
        "latency": entity(
            "latency",
            "sensor",
            "Voice to voice",
            stat_t=topics.telemetry,
            dev_cla="duration",
            stat_cla="measurement",
            unit_of_meas="ms",
            ent_cat="diagnostic",
            val_tpl="{{ value_json.voice_to_voice_ms.p50 }}",
        ),
        "agent": entity(
            "agent",
            "select",
            "Agent",
            stat_t=state,
            cmd_t=command("handoff"),
            options=agents,
            val_tpl="{{ value_json.agent }}",
            cmd_tpl="{" + FRESH_ID + ', "to": "agent:{{ value }}"}',
        ),
        "restart": entity(
            "restart",
            "button",
            "Restart",
            cmd_t=command("restart"),
            dev_cla="restart",
            ent_cat="config",
            cmd_tpl="{" + FRESH_ID + "}",
        ),
        "firmware": entity(
            "firmware",
            "update",
            "Firmware",
            stat_t=topics.status,
            val_tpl="{{ value_json.version }}",
            l_ver_t=latest_release_topic(topics.prefix),
            l_ver_tpl="{{ value_json.version }}",
            ent_cat="diagnostic",
        ),
    }
    if has_speaker:
        components["mute"] = entity(
            "mute",
            "switch",
            "Mute",
            stat_t=state,
            cmd_t=command("mute"),
            val_tpl="{{ 'ON' if value_json.muted else 'OFF' }}",
            cmd_tpl="{" + FRESH_ID + ', "on": {{ "true" if value == "ON" else "false" }}}',
        )
        components["volume"] = entity(
            "volume",
            "number",
            "Volume",
            stat_t=state,
            cmd_t=command("volume"),
            min=0,
            max=100,
            step=5,
            unit_of_meas="%",
            val_tpl="{{ value_json.volume }}",
            cmd_tpl="{" + FRESH_ID + ', "level": {{ value | int }}}',
        )
    return {
        "dev": {
            "ids": [f"appliance-{device}"],
            "name": f"Appliance {device}",
            "mf": "appliance",
            "mdl": "voice appliance",
            "sw": version,
        },
        "o": {"name": "appliance", "sw": version},
        "avty_t": topics.status,
        "avty_tpl": "{{ value_json.state }}",
        "pl_avail": "online",
        "pl_not_avail": "offline",
        "cmps": components,
    }
