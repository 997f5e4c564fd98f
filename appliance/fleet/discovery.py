"""Home Assistant MQTT discovery: the device appears in Home Assistant by itself.

One device-based discovery message (`homeassistant/device/<id>/config`, retained) describes every
entity: state and last-latency sensors from telemetry, a mute switch, a volume number, an agent
select and a restart button. Availability follows the retained status topic. Commands from Home
Assistant get a fresh id each (a template with the time), since a repeated id is not run twice.
"""

from __future__ import annotations

from typing import Any

from appliance import __version__
from appliance.fleet.topics import Topics

FRESH_ID = '"id": "ha-{{ now().timestamp() }}"'


def discovery_topic(device_id: str) -> str:
    return f"homeassistant/device/{device_id}/config"


def discovery_payload(topics: Topics, agents: list[str]) -> dict[str, Any]:
    device = topics.device_id
    slug = device.replace("-", "_")
    telemetry = topics.telemetry

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

    return {
        "dev": {
            "ids": [f"appliance-{device}"],
            "name": f"Appliance {device}",
            "mf": "appliance",
            "mdl": "voice appliance",
            "sw": __version__,
        },
        "o": {"name": "appliance", "sw": __version__},
        "avty_t": topics.status,
        "avty_tpl": "{{ value_json.state }}",
        "pl_avail": "online",
        "pl_not_avail": "offline",
        "cmps": {
            "state": entity("state", "sensor", "State", stat_t=telemetry, val_tpl="{{ value_json.state }}"),
            "latency": entity(
                "latency",
                "sensor",
                "Voice to voice",
                stat_t=telemetry,
                unit_of_meas="ms",
                val_tpl="{{ value_json.voice_to_voice_ms.p50 }}",
            ),
            "mute": entity(
                "mute",
                "switch",
                "Mute",
                stat_t=telemetry,
                cmd_t=command("mute"),
                val_tpl="{{ 'ON' if value_json.muted else 'OFF' }}",
                cmd_tpl="{" + FRESH_ID + ', "on": {{ "true" if value == "ON" else "false" }}}',
            ),
            "volume": entity(
                "volume",
                "number",
                "Volume",
                stat_t=telemetry,
                cmd_t=command("volume"),
                min=0,
                max=100,
                step=5,
                val_tpl="{{ value_json.volume }}",
                cmd_tpl="{" + FRESH_ID + ', "level": {{ value | int }}}',
            ),
            "agent": entity(
                "agent",
                "select",
                "Agent",
                stat_t=telemetry,
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
                cmd_tpl="{" + FRESH_ID + "}",
            ),
        },
    }
