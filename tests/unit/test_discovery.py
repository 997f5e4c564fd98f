"""Home Assistant discovery matches what the device really publishes: each entity's template is rendered
(with Jinja, as Home Assistant does) against the payload of the topic it reads, built by the device's own
code, and must give a value the entity accepts."""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest

from appliance.agents.registry import agent_names
from appliance.control import Control
from appliance.fleet.device import device_state
from appliance.fleet.device_commands import HandoffArgs, MuteArgs, VolumeArgs
from appliance.fleet.discovery import STATES, discovery_payload
from appliance.fleet.telemetry import Telemetry
from appliance.fleet.topics import Topics
from tests.unit.test_call_manager import Box

TOPICS = Topics("appliance", "kitchen-1", "home")


def render(template: str, payload: dict[str, Any], **names: Any) -> str:
    return jinja2.Environment().from_string(template).render(value_json=json.loads(json.dumps(payload)), **names)


def published(control: Control) -> dict[str, dict[str, Any]]:
    """Topic -> what the device publishes there (status as the link builds it: version and state)."""
    return {
        TOPICS.state: device_state(control, lambda: "open"),
        TOPICS.telemetry: Telemetry(control).snapshot(),
        TOPICS.status: {"state": "online", "version": "1.2.3", "config_version": 0, "group": "home"},
    }


@pytest.mark.parametrize("headless", [False, True])
async def test_every_entity_reads_a_value_its_topic_really_carries(headless: bool) -> None:
    box = Box(with_device=not headless)
    control = Control(box.primary, calls=box.calls, headless=headless)
    components = discovery_payload(TOPICS, agent_names(), has_speaker=not headless)["cmps"]
    topics = published(control)
    values = {key: render(c["val_tpl"], topics[c["stat_t"]]) for key, c in components.items() if "stat_t" in c}
    assert values["state"] in STATES and values["state"] == ("headless" if headless else "listening")
    assert values["agent"] == control.state().agent  # the test box's agent; a real one is in the options
    assert values["firmware"] == "1.2.3"
    assert values["latency"] == "None"  # no turn yet: Home Assistant shows unknown
    if headless:
        assert "mute" not in components and "volume" not in components  # nothing of its own to mute
    else:
        assert values["mute"] == "OFF" and values["volume"] == "100"
        control.mute(True)
        control.set_volume(35)
        state = device_state(control, None)
        assert render(components["mute"]["val_tpl"], state) == "ON"
        assert render(components["volume"]["val_tpl"], state) == "35"
    await box.calls.aclose()


def test_entity_classes_units_and_categories_are_the_ones_home_assistant_expects() -> None:
    components = discovery_payload(TOPICS, ["assistant", "chef"])["cmps"]
    assert components["state"]["dev_cla"] == "enum" and components["state"]["options"] == STATES
    latency = components["latency"]
    assert (latency["dev_cla"], latency["stat_cla"], latency["unit_of_meas"]) == ("duration", "measurement", "ms")
    assert latency["ent_cat"] == "diagnostic" and components["firmware"]["ent_cat"] == "diagnostic"
    assert components["volume"]["unit_of_meas"] == "%" and components["restart"]["ent_cat"] == "config"
    assert {c["stat_t"] for k, c in components.items() if k in ("state", "agent", "mute", "volume")} == {TOPICS.state}

    # The commands Home Assistant sends are ones the device's parser accepts (a fresh id, strict types).
    def now() -> Any:
        return type("Now", (), {"timestamp": lambda self: 1.5})()

    mute = json.loads(render(components["mute"]["cmd_tpl"], {}, value="ON", now=now))
    volume = json.loads(render(components["volume"]["cmd_tpl"], {}, value="35.0", now=now))
    agent = json.loads(render(components["agent"]["cmd_tpl"], {}, value="chef", now=now))
    assert mute == {"id": "ha-1.5", "on": True} and volume == {"id": "ha-1.5", "level": 35}
    assert agent == {"id": "ha-1.5", "to": "agent:chef"}
    MuteArgs.model_validate(mute), VolumeArgs.model_validate(volume), HandoffArgs.model_validate(agent)


def test_the_update_entity_reads_the_installed_release_and_the_announced_one() -> None:
    firmware = discovery_payload(TOPICS, ["assistant"])["cmps"]["firmware"]
    assert firmware["p"] == "update" and firmware["l_ver_t"] == "appliance/release/latest"
    announced = {"version": "0.2.0", "release": "https://example.com/a.tar", "sha256": "ab" * 32, "ts": 1.0}
    assert render(firmware["l_ver_tpl"], announced) == "0.2.0"
    assert render(firmware["val_tpl"], {"state": "online", "version": "0.1.0"}) == "0.1.0"
