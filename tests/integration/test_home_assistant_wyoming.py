"""Home Assistant's own Wyoming integration adds the device's services and its satellite, and runs Assist
pipelines through them: the device's speech-to-text, its agent as the conversation agent (tools and all) and
its voice; and a request heard by the device's microphone answered through its speaker.

One `appliance run` on the PulseAudio rig's sound card serves both: the Wyoming services and the satellite
(`activation.pipeline = "home-assistant"`). The integration is set up as its "Add integration" dialog does
(a config entry with the host and port; Zeroconf discovery makes the same entry). The pipeline is made over
Home Assistant's websocket API as its settings page does, and run as its voice dialog does.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.resample import resample
from appliance.providers.local.piper_tts import PiperTTS
from tests.fakes import silence
from tests.integration.app_process import Appliance
from tests.integration.broker import mosquitto
from tests.integration.home_assistant import HomeAssistant, hass_or_skip, wyoming_entry
from tests.integration.pulse_rig import PulseRig, pulse_rig
from tests.integration.speech_check import audible, overlap, transcribe, words

REQUEST = "set a timer for five minutes"
ANSWER = "Your timer is set for five minutes."
"""What the device's timer tool says: the agent's own words, not a model's."""
ANNOUNCEMENT = "Dinner is ready in the kitchen."


@pytest.fixture(scope="module")
def hass_executable() -> Path:
    return hass_or_skip()


def spoken(models_dir: Path, text: str) -> AudioChunk:
    """`text` in the packaged Piper voice, 16 kHz."""
    voice = models_dir / "piper-joe-medium"
    tts = PiperTTS(voice / "en_US-joe-medium.onnx", voice / "en_US-joe-medium.onnx.json", threads=2)

    async def speak() -> AudioChunk:
        chunks = [chunk async for chunk in tts.synthesize(text)]
        return AudioChunk(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)

    return resample(asyncio.run(speak()), ENGINE_RATE)


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


@pytest.fixture(scope="module")
def pipeline(home: Home) -> str:
    """An Assist pipeline on the device's services, made Home Assistant's preferred one (what a satellite
    runs unless told otherwise)."""
    entities = home.entities(home.services)
    (made,) = home.hass.websocket(
        {
            "type": "assist_pipeline/pipeline/create",
            "name": "appliance",
            "language": "en",
            "conversation_engine": entities["conversation"],
            "conversation_language": "en",
            "stt_engine": entities["stt"],
            "stt_language": "en",
            "tts_engine": entities["tts"],
            "tts_language": "en",
            "tts_voice": None,
            "wake_word_entity": None,
            "wake_word_id": None,
        }
    )
    home.hass.websocket({"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": made["id"]})
    return str(made["id"])


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


def wav_audio(data: bytes) -> AudioChunk:
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return AudioChunk(samples.copy(), wav.getframerate())


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
    assert response["speech"]["plain"]["speech"] == ANSWER, response  # its agent ran the timer tool
    answer = wav_audio(home.hass.fetch(event_data(events, "tts-end")["tts_output"]["url"]))
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
    record = json.loads(next(line for line in home.device.out.read_text().splitlines() if line.startswith("{")))
    # Home Assistant's pipeline (the device's services behind it) sent back what it heard and said.
    assert not record.get("error"), record
    assert overlap(REQUEST, record["user_text"]) >= 0.8 and record["agent_text"] == ANSWER, record
    assert "appliance" not in words(record["user_text"]), record  # Home Assistant got the request only
    heard = transcribe(models_dir, home.rig.speaker())
    assert overlap(ANSWER, heard) >= 0.6, heard  # and the answer came out of the device's speaker
    print(f"\nsatellite turn through Home Assistant: voice-to-voice {record['latency_ms'].get('voice_to_voice')} ms")
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
    assert not audible(AudioChunk(heard.samples[returned:], heard.sample_rate), 0, 1.0)  # all played by then
    assert "Did not receive played event" not in home.hass.log.read_text()  # the device said `played`
    assert not home.hass.complaints("wyoming", "assist_satellite"), home.hass.complaints("wyoming", "assist_satellite")
