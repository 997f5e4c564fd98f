"""Home Assistant core itself finds the device through MQTT discovery on a real Mosquitto and drives it.

The device runs on the PulseAudio rig's sound card: a box with its own microphone and speaker is the one
whose discovery has the mute switch and volume (a headless box has neither). Home Assistant gets a
pre-seeded MQTT config entry for the test broker and an owner through the onboarding API; the test then
uses its REST API as a dashboard does, and reads its log for what the MQTT integration refused.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.fleet.discovery import discovery_topic
from appliance.system.lifecycle import EXIT_RESTART
from tests.integration.broker import Broker, collect, mosquitto
from tests.integration.home_assistant import HomeAssistant, hass_or_skip
from tests.integration.pulse_rig import PulseRig, pulse_rig
from tests.integration.test_fleet import HeadlessDevice

DEVICE, HEADLESS = "kitchen-1", "hall-1"
STATE, STATUS = f"appliance/{DEVICE}/state", f"appliance/{DEVICE}/status"
ANNOUNCED = "9.9.9"
"""The newest release an operator announced (retained, as `appliance fleet announce` publishes it)."""


class SoundCardDevice:
    """`appliance run` on the rig's sound card with MQTT on the test broker. `start` after it exited is
    what systemd does on the restart status."""

    def __init__(self, broker: Broker, rig: PulseRig, models_dir: Path, root: Path) -> None:
        self.env = {
            **os.environ,
            **rig.env,
            "APPLIANCE_MODELS__DIR": str(models_dir),
            "APPLIANCE_MQTT__ENABLED": "true",
            "APPLIANCE_MQTT__HOST": "127.0.0.1",
            "APPLIANCE_MQTT__PORT": str(broker.port),
            "APPLIANCE_MQTT__DEVICE_ID": DEVICE,
            "APPLIANCE_MQTT__GROUP": "home",
            "APPLIANCE_MQTT__TELEMETRY_INTERVAL_S": "1",
            "APPLIANCE_STATE__DIR": str(root / "state"),
        }
        self.root = root
        self.starts = 0
        self.start()

    def start(self) -> None:
        self.starts += 1
        self.err = self.root / f"device-{self.starts}.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.err.open("w"),
        )

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.err.read_text():
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, f"no {text!r}: {self.err.read_text()}"
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Home:
    broker: Broker
    rig: PulseRig
    hass: HomeAssistant
    device: SoundCardDevice
    discovery: dict[str, Any]
    entities: dict[str, str]
    """Discovery component key -> the entity id Home Assistant gave it (found by unique id)."""

    def shown(self) -> dict[str, str]:
        return shown(self.hass, self.entities)


def retained(broker: Broker, topic: str) -> dict[str, Any]:
    return asyncio.run(collect(broker, topic, 1, timeout=10))[0]


def until(check: Callable[[], bool], what: Callable[[], str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what())
        time.sleep(0.3)


@pytest.fixture(scope="module")
def hass_executable() -> Path:
    return hass_or_skip()


@pytest.fixture(scope="module")
def home(hass_executable: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("home")
    with mosquitto() as broker, pulse_rig() as rig:
        announcement = f'{{"version": "{ANNOUNCED}", "release": "https://example.com/a.tar", "sha256": "{"ab" * 32}"}}'
        subprocess.run(
            ["mosquitto_pub", "-p", str(broker.port), "-t", "appliance/release/latest", "-r", "-m", announcement],
            check=True,
            timeout=10,
        )
        hass = HomeAssistant(hass_executable, root, broker.port)
        device: SoundCardDevice | None = None
        try:
            device = SoundCardDevice(broker, rig, models_dir, root)
            answered = hass.wait_until_answering()
            hass.onboard()
            print(f"Home Assistant {'.'.join(map(str, hass.version()))} answered {answered:.1f} s after its start")
            device.wait_for("mqtt: connected")
            discovery = retained(broker, discovery_topic(DEVICE))
            yield Home(broker, rig, hass, device, discovery, registered(hass, discovery))
        finally:
            if device is not None:
                device.close()
            hass.stop()


def registered(hass: HomeAssistant, discovery: dict[str, Any]) -> dict[str, str]:
    """Discovery component key -> entity id, once Home Assistant registered every component (by unique id)."""
    wanted = {component["unique_id"]: key for key, component in discovery["cmps"].items()}
    entities: dict[str, str] = {}

    def complete() -> bool:
        (listing,) = hass.websocket({"type": "config/entity_registry/list"})
        entities.update({wanted[e["unique_id"]]: e["entity_id"] for e in listing if e["unique_id"] in wanted})
        return len(entities) == len(wanted)

    until(complete, lambda: f"registered {entities} of {wanted}: {hass.complaints(*wanted)}", timeout=60)
    return entities


def expected_states(broker: Broker, device: str, components: dict[str, Any]) -> dict[str, str]:
    """What each entity must show, from what the device itself publishes (not from the discovery
    document: a wrong topic or template there shows up as a difference)."""
    state = retained(broker, f"appliance/{device}/state")
    status = retained(broker, f"appliance/{device}/status")
    expected = {
        "state": state["state"],
        "agent": state["agent"],
        "latency": "unknown",  # no turn yet: the telemetry's p50 is null
        "restart": "unknown",  # a button's state is when it was last pressed
        "firmware": "on" if status["version"] != ANNOUNCED else "off",
    }
    if "mute" in components:
        expected["mute"] = "on" if state["muted"] else "off"
        expected["volume"] = f"{float(state['volume']):g}"
    return expected


def shown(hass: HomeAssistant, entities: dict[str, str]) -> dict[str, str]:
    """What Home Assistant shows for each entity (the volume as a number: 35 and 35.0 are the same)."""
    states = hass.states()
    now = {}
    for key, entity_id in entities.items():
        value = states.get(entity_id, {}).get("state", "missing")
        now[key] = f"{float(value):g}" if key == "volume" and value not in ("unknown", "unavailable") else value
    return now


def assert_shown_as_discovered(hass: HomeAssistant, broker: Broker, device: str, discovery: dict[str, Any]) -> None:
    """Every entity of the discovery message shows the device's state, and the attributes and device
    the message gives."""
    components = discovery["cmps"]
    entities = registered(hass, discovery)
    expected = expected_states(broker, device, components)
    assert set(expected) == set(components), "every entity the device announces needs its expected state here"
    until(
        lambda: shown(hass, entities) == expected,
        lambda: f"Home Assistant shows {shown(hass, entities)}, the device {expected}",
    )
    states = hass.states()
    for key, component in components.items():
        attributes = states[entities[key]]["attributes"]
        assert attributes["friendly_name"] == f"{discovery['dev']['name']} {component['name']}"
        assert attributes.get("device_class") == component.get("dev_cla"), key
        assert attributes.get("unit_of_measurement") == component.get("unit_of_meas"), key
        if "options" in component:
            assert attributes["options"] == component["options"], key
    firmware = states[entities["firmware"]]["attributes"]
    assert firmware["installed_version"] == retained(broker, f"appliance/{device}/status")["version"]
    assert firmware["latest_version"] == ANNOUNCED

    (devices,) = hass.websocket({"type": "config/device_registry/list"})
    (known,) = [d for d in devices if ["mqtt", f"appliance-{device}"] in d["identifiers"]]
    dev = discovery["dev"]
    assert (known["name"], known["manufacturer"], known["model"]) == (dev["name"], dev["mf"], dev["mdl"])
    assert known["sw_version"] == dev["sw"]
    if hass.version() >= (2025, 10):  # releases that read default_entity_id (2025.4 ignores it)
        assert entities == {key: c["default_entity_id"] for key, c in components.items()}
    # A deprecated discovery option shows as a repair (as object_id did from 2025.10) besides the log.
    (repairs,) = hass.websocket({"type": "repairs/list_issues"})
    assert [issue for issue in repairs["issues"] if issue["domain"] == "mqtt"] == []
    assert hass.complaints(device) == []


def test_every_discovered_entity_appears_with_the_state_the_device_publishes(home: Home) -> None:
    platforms = {c["p"] for c in home.discovery["cmps"].values()}
    assert platforms == {"sensor", "select", "switch", "number", "button", "update"}
    assert_shown_as_discovered(home.hass, home.broker, DEVICE, home.discovery)


def test_a_headless_box_appears_too_without_mute_or_volume(home: Home, models_dir: Path, tmp_path: Path) -> None:
    headless = HeadlessDevice(home.broker, models_dir, tmp_path, extra_env={"APPLIANCE_MQTT__DEVICE_ID": HEADLESS})
    try:
        headless.wait_for("mqtt: connected")
        discovery = retained(home.broker, discovery_topic(HEADLESS))
        assert "mute" not in discovery["cmps"] and "volume" not in discovery["cmps"]
        assert_shown_as_discovered(home.hass, home.broker, HEADLESS, discovery)
    finally:
        headless.close()


def test_a_spoken_turn_shows_its_voice_to_voice_latency_in_home_assistant(home: Home) -> None:
    from appliance.audio.wav import read_wav
    from tests.fakes import silence
    from tests.integration.conftest import DATA

    home.rig.say(silence(0.5))
    home.rig.say(read_wav(DATA / "questions" / "q04.wav"))

    def latency() -> float | None:
        value: float | None = retained(home.broker, f"appliance/{DEVICE}/telemetry")["voice_to_voice_ms"]["p50"]
        return value

    until(lambda: latency() is not None, lambda: "no turn in the telemetry", timeout=90)
    expected = latency()
    until(
        lambda: (
            home.shown()["latency"] not in ("unknown", "unavailable") and float(home.shown()["latency"]) == expected
        ),
        lambda: f"Home Assistant shows {home.shown()['latency']}, the telemetry {expected}",
    )
    until(lambda: home.shown()["state"] == "listening", lambda: f"Home Assistant shows {home.shown()}")
    assert home.hass.complaints(DEVICE) == []  # thinking and speaking passed as options of the enum sensor


def test_mute_volume_and_agent_set_in_home_assistant_reach_the_device(home: Home) -> None:
    ids = home.entities

    def device_state() -> dict[str, Any]:
        return retained(home.broker, STATE)

    home.hass.service("switch", "turn_on", entity_id=ids["mute"])
    until(lambda: device_state()["muted"] is True, lambda: f"not muted: {device_state()}")
    until(lambda: home.shown()["mute"] == "on", lambda: f"Home Assistant shows {home.shown()}")
    home.hass.service("switch", "turn_off", entity_id=ids["mute"])
    until(lambda: device_state()["muted"] is False, lambda: f"still muted: {device_state()}")

    home.hass.service("number", "set_value", entity_id=ids["volume"], value=35)
    until(lambda: device_state()["volume"] == 35, lambda: f"volume not 35: {device_state()}")
    until(lambda: home.shown()["volume"] == "35", lambda: f"Home Assistant shows {home.shown()}")

    other = next(agent for agent in home.discovery["cmps"]["agent"]["options"] if agent != device_state()["agent"])
    home.hass.service("select", "select_option", entity_id=ids["agent"], option=other)
    until(lambda: device_state()["agent"] == other, lambda: f"agent not {other}: {device_state()}")
    until(lambda: home.shown()["agent"] == other, lambda: f"Home Assistant shows {home.shown()}")
    assert home.hass.complaints(DEVICE) == []


def test_the_restart_button_restarts_the_device_and_home_assistant_sees_it_go_and_come_back(home: Home) -> None:
    home.hass.service("button", "press", entity_id=home.entities["restart"])
    assert home.device.proc.wait(30) == EXIT_RESTART  # systemd/appliance.service: RestartForceExitStatus=75
    until(lambda: home.shown()["state"] == "unavailable", lambda: f"still available: {home.shown()}")

    home.device.start()  # as the unit does on status 75
    home.device.wait_for("mqtt: connected")
    until(lambda: home.shown()["state"] not in ("unavailable", "unknown"), lambda: f"not back: {home.shown()}")
    assert home.shown()["state"] == retained(home.broker, STATE)["state"]
    assert home.hass.complaints(DEVICE) == []
