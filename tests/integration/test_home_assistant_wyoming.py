"""Home Assistant's own Wyoming integration adds the device's services and its satellite, and runs Assist
pipelines through them: the device's speech-to-text, its agent as the conversation agent (tools and all) and
its voice; and a request heard by the device's microphone answered through its speaker.

One `appliance run` on the PulseAudio rig's sound card serves both: the Wyoming services and the satellite
(`activation.pipeline = "home-assistant"`). The integration is set up as its "Add integration" dialog does
(a config entry with the host and port; Zeroconf discovery makes the same entry). The pipeline is made over
Home Assistant's websocket API as its settings page does, and run as its voice dialog does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample
from tests.fakes import silence
from tests.integration.app_process import Appliance, launched
from tests.integration.broker import mosquitto
from tests.integration.home_assistant import HomeAssistant, hass_or_skip, wyoming_entry
from tests.integration.pulse_rig import PulseRig, pulse_rig
from tests.integration.speech_check import audible, overlap, piper_speech, transcribe, words

REQUEST = "set a timer for five minutes"
ANSWER = "your timer is set for five minutes"
"""What the device's timer tool says ("Okay, your timer is set for 5 minutes."): the agent's own words, not a
model's."""
ANNOUNCEMENT = "Dinner is ready in the kitchen, so come and eat while it is still warm."
"""Long enough that one misheard word is not most of it: whisper-tiny heard "Dinner is" as "Danners" once on a
loaded CI box, a third of a six-word announcement."""


@pytest.fixture(scope="module")
def hass_executable() -> Path:
    return hass_or_skip()


def spoken(models_dir: Path, text: str) -> AudioChunk:
    """`text` in the packaged Piper voice, 16 kHz."""
    return resample(piper_speech(models_dir, text), ENGINE_RATE)


class Home:
    """The device on the sound card, its two Wyoming listeners, and Home Assistant with both added."""

    def __init__(self, hass: HomeAssistant, device: Appliance, rig: PulseRig, services: int, satellite: int) -> None:
        self.hass = hass
        self.device = device
        self.rig = rig
        self.services = services
        self.satellite = satellite

    def entities(self, port: int) -> dict[str, str]:
        return our_entities(self.hass, wyoming_entry(port)["entry_id"])

    def engines(self, home_agent: bool = False) -> dict[str, str]:
        """A pipeline's engines: the device's speech-to-text and voice, and its agent or Home Assistant's."""
        entities = self.entities(self.services)
        return {
            "stt_engine": entities["stt"],
            "tts_engine": entities["tts"],
            "conversation_engine": "conversation.home_assistant" if home_agent else entities["conversation"],
        }


def listening_port(device: Appliance, what: str) -> int:
    found = re.search(rf"{what}: listening on 127\.0\.0\.1:(\d+)", device.log.read_text())
    assert found, device.log.read_text()
    return int(found.group(1))


@pytest.fixture(scope="module")
def home(hass_executable: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("home-wyoming")
    with pulse_rig() as rig, mosquitto() as broker:
        device = Appliance(
            rig,
            models_dir,
            "-v",  # the satellite's and the session's info lines, for a failure to show what was heard
            env={
                "APPLIANCE_STATE__DIR": str(root / "state"),
                "APPLIANCE_ACTIVATION__MODE": "wake",
                "APPLIANCE_ACTIVATION__PIPELINE": "home-assistant",
                "APPLIANCE_WYOMING__ENABLED": "true",
                "APPLIANCE_WYOMING__HOST": "127.0.0.1",
                "APPLIANCE_WYOMING__PORT": "0",
                "APPLIANCE_WYOMING__SATELLITE_PORT": "0",
                "APPLIANCE_WYOMING__SATELLITE_TIMEOUT_S": "30",  # a shared 2-core box runs three programs
                "APPLIANCE_WYOMING__ZEROCONF": "false",
            },
        )
        launched.remove(device.proc)  # this module's to stop, not each test's leftover to kill
        try:
            device.wait_for("sound device: streaming", timeout=120)
            services, satellite = listening_port(device, "wyoming"), listening_port(device, "satellite")
            entries = (wyoming_entry(services), wyoming_entry(satellite))
            hass = HomeAssistant(hass_executable, root, broker.port, entries)
            try:
                answered = hass.wait_until_answering()
                hass.onboard()
                print(f"Home Assistant {'.'.join(map(str, hass.version()))} answered {answered:.1f} s after its start")
                yield Home(hass, device, rig, services, satellite)
            finally:
                hass.stop()
        finally:
            device.stop()


PIPELINE = {
    "language": "en",
    "conversation_language": "en",
    "stt_language": "en",
    "tts_language": "en",
    "tts_voice": None,
    "wake_word_entity": None,
    "wake_word_id": None,
}
"""What every pipeline here has, as Home Assistant's assistant settings page sends it."""


@pytest.fixture(scope="module")
def pipeline(home: Home) -> str:
    """An Assist pipeline on the device's services (its agent too), made Home Assistant's preferred one (what
    a satellite runs unless told otherwise)."""
    (made,) = home.hass.websocket(
        {**PIPELINE, "type": "assist_pipeline/pipeline/create", "name": "appliance", **home.engines()}
    )
    home.hass.websocket({"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": made["id"]})
    return str(made["id"])


def turn_records(device: Appliance) -> list[dict[str, Any]]:
    return [json.loads(line) for line in device.out.read_text().splitlines() if line.startswith("{")]


def our_entities(hass: HomeAssistant, entry_id: str, timeout: float = 60) -> dict[str, str]:
    """Platform -> entity id of what the Wyoming integration made of a config entry: `stt`, `tts`,
    `conversation` for the services, `assist_satellite` and its settings for the satellite."""
    deadline = time.monotonic() + timeout
    while True:
        (listing,) = hass.websocket({"type": "config/entity_registry/list"})
        found = {e["entity_id"].split(".")[0]: e["entity_id"] for e in listing if e["config_entry_id"] == entry_id}
        if {"stt", "tts", "conversation"} <= set(found) or "assist_satellite" in found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"the Wyoming integration made {found}: {hass.complaints('wyoming')}")
        time.sleep(0.5)


def event_data(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [e["data"] for e in events if e["type"] == kind]
    assert found, f"no {kind!r} in {[(e['type'], e.get('data')) for e in events]}"
    return dict(found[0])


def test_an_assist_pipeline_on_the_devices_services_hears_answers_with_its_tool_and_speaks(
    home: Home, pipeline: str, models_dir: Path
) -> None:
    request = spoken(models_dir, f"{REQUEST}.")
    lead = np.zeros(int(0.3 * ENGINE_RATE), dtype=np.int16)  # a breath before the words, as a microphone has
    audio = np.concatenate([lead, request.samples]).astype("<i2").tobytes()
    started = time.monotonic()
    events = home.hass.run_pipeline(pipeline, audio, ENGINE_RATE)
    took = time.monotonic() - started
    assert not [e for e in events if e["type"] == "error"], events

    heard = event_data(events, "stt-end")["stt_output"]["text"]
    assert overlap(REQUEST, heard) == 1.0, heard  # the device's speech-to-text, through Home Assistant
    response = event_data(events, "intent-end")["intent_output"]["response"]
    assert overlap(ANSWER, response["speech"]["plain"]["speech"]) == 1.0, response  # its agent ran the timer tool
    answer = AudioChunk(home.hass.decode(home.hass.fetch(event_data(events, "tts-end")["tts_output"]["url"])), 16_000)
    assert answer.duration > 1.0
    assert overlap(ANSWER, transcribe(models_dir, answer)) >= 0.8  # and the device's voice said it
    print(f"\nAssist pipeline on the device's Wyoming services: speech to spoken answer in {took:.2f} s")
    assert not home.hass.complaints("wyoming", "assist_pipeline"), home.hass.complaints("wyoming", "assist_pipeline")


def test_home_assistant_runs_the_device_as_its_satellite_heard_by_its_microphone_answered_on_its_speaker(
    home: Home, pipeline: str, models_dir: Path
) -> None:
    satellite = home.entities(home.satellite)
    assert "assist_satellite" in satellite, satellite  # Home Assistant made an Assist satellite of the device
    home.device.wait_for("satellite: Home Assistant runs this satellite", timeout=60)
    home.rig.say(silence(0.5))
    home.rig.say(spoken(models_dir, f"Hey appliance, {REQUEST}."))
    home.device.wait_for('"turn": 1', timeout=120)
    record = turn_records(home.device)[0]
    # Home Assistant's pipeline (the device's services behind it) sent back what it heard and said.
    assert not record.get("error"), record
    assert overlap(REQUEST, record["user_text"]) >= 0.8 and overlap(ANSWER, record["agent_text"]) == 1.0, record
    assert "appliance" not in words(record["user_text"]), record  # Home Assistant got the request only
    heard = transcribe(models_dir, home.rig.speaker())
    assert overlap(ANSWER, heard) >= 0.6, heard  # and the answer came out of the device's speaker
    print(f"\nsatellite turn through Home Assistant: {record['latency_ms']}")
    assert not home.hass.complaints("wyoming", "assist_satellite"), home.hass.complaints("wyoming", "assist_satellite")


def test_an_announcement_from_home_assistant_is_played_on_the_device(
    home: Home, pipeline: str, models_dir: Path
) -> None:
    satellite = home.entities(home.satellite)["assist_satellite"]
    before = len(home.rig.speaker().samples)
    # As an automation's "Announce" action runs it; it returns once the satellite says `played`.
    home.hass.service("assist_satellite", "announce", entity_id=satellite, message=ANNOUNCEMENT, preannounce=False)
    returned = len(home.rig.speaker().samples)
    time.sleep(1.0)
    heard = home.rig.speaker()
    announced = AudioChunk(heard.samples[before:returned], heard.sample_rate)
    assert overlap(ANNOUNCEMENT, transcribe(models_dir, announced)) >= 0.75, transcribe(models_dir, announced)
    # All played by then (the rig records the speaker a little behind: the first 0.3 s may still hold its end).
    assert not audible(AudioChunk(heard.samples[returned:], heard.sample_rate), 0.3, 1.0)
    assert "Did not receive played event" not in home.hass.log.read_text()  # the device said `played`
    assert not home.hass.complaints("wyoming", "assist_satellite"), home.hass.complaints("wyoming", "assist_satellite")


def test_home_assistants_own_agent_sets_a_timer_for_the_satellite_and_the_device_rings_it(
    home: Home, pipeline: str, models_dir: Path
) -> None:
    """Home Assistant's built-in agent (its intents, not the device's agent) behind the satellite: it matches
    only the request without the wake phrase, and the timer it keeps for the satellite rings on the device."""
    (made,) = home.hass.websocket(
        {**PIPELINE, "type": "assist_pipeline/pipeline/create", "name": "home", **home.engines(home_agent=True)}
    )
    home.hass.websocket({"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": made["id"]})
    try:
        records = len(turn_records(home.device))
        home.rig.say(silence(0.5))
        home.rig.say(spoken(models_dir, "Hey appliance, set a timer for five seconds."))
        home.device.wait_for(f'"turn": {records + 1}', timeout=120)
        record = turn_records(home.device)[-1]
        assert not record.get("error") and "timer" in words(record["agent_text"]), record  # started, not "Sorry"
        before = len(home.rig.speaker().samples)
        time.sleep(12.0)  # five seconds, and the device saying so
        heard = home.rig.speaker()
        rung = transcribe(models_dir, AudioChunk(heard.samples[before:], heard.sample_rate))
        assert overlap("your timer is done", rung) >= 0.75, rung
    finally:
        home.hass.websocket({"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": pipeline})
