"""The Wyoming services' parts that need no model: the wire reader, client audio, the info, the config."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from wyoming.event import Event

from appliance.audio.frames import ENGINE_RATE
from appliance.config import ConfigError, load_config
from appliance.wyoming.announce import announced_address
from appliance.wyoming.audio_in import AudioFormatError, AudioIn, PcmFormat
from appliance.wyoming.describe import ServiceNames, describe, stt_languages, wake_model_name
from appliance.wyoming.wire import MAX_PAYLOAD, BadEvent, BrokenStream, read_event


def _read(data: bytes) -> Event | None:
    async def main() -> Event | None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_event(reader)

    return asyncio.run(main())


def _header(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def test_an_event_with_data_and_payload_is_read_whole() -> None:
    data = json.dumps({"width": 2, "channels": 1}).encode()
    raw = _header(type="audio-chunk", data={"rate": 16000}, data_length=len(data), payload_length=4) + data + b"abcd"
    event = _read(raw)
    assert event == Event(type="audio-chunk", data={"rate": 16000, "width": 2, "channels": 1}, payload=b"abcd")


def test_a_closed_connection_reads_as_none() -> None:
    assert _read(b"") is None
    assert _read(_header(type="audio-chunk", payload_length=10) + b"abc") is None  # cut off mid-payload


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"this is not json\n", "one line of JSON"),
        (b"[1, 2]\n", "'type' string"),
        (_header(data={}), "'type' string"),
        (_header(type="describe", data=[1]), "must be a JSON object"),
        (_header(type="describe", data_length=5) + b"nope!", "not JSON"),
    ],
)
def test_garbage_the_stream_survives_is_a_bad_event(raw: bytes, message: str) -> None:
    with pytest.raises(BadEvent, match=message) as info:
        _read(raw)
    assert not isinstance(info.value, BrokenStream)


@pytest.mark.parametrize(
    "header",
    [
        _header(type="audio-chunk", payload_length="ten"),
        _header(type="audio-chunk", payload_length=-1),
        _header(type="audio-chunk", payload_length=MAX_PAYLOAD + 1),
        b"x" * 70_000 + b"\n",
    ],
)
def test_a_length_that_cannot_be_trusted_breaks_the_stream(header: bytes) -> None:
    async def main() -> None:
        reader = asyncio.StreamReader(limit=64 * 1024)
        reader.feed_data(header)
        reader.feed_eof()
        await read_event(reader)

    with pytest.raises(BrokenStream):
        asyncio.run(main())


def _tone(rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * 440 * t)


@pytest.mark.parametrize(("rate", "width", "channels"), [(16000, 2, 1), (44100, 4, 2), (8000, 1, 1), (48000, 2, 6)])
def test_any_pcm_format_becomes_the_engine_format_at_the_same_level(rate: int, width: int, channels: int) -> None:
    wave = _tone(rate)
    if width == 1:
        samples = (wave * 127 + 128).astype(np.uint8)
    else:
        samples = (wave * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}")
    audio = np.repeat(samples, channels).tobytes()
    stream = AudioIn(PcmFormat(rate, width, channels))
    pcm = PcmFormat.of({"rate": rate, "width": width, "channels": channels})
    half = len(audio) // 2 // (width * channels) * (width * channels)
    out = np.concatenate([stream.convert(pcm, audio[:half]), stream.convert(pcm, audio[half:]), stream.flush()])
    assert abs(len(out) - ENGINE_RATE) <= 2
    assert stream.seconds_in == pytest.approx(1.0)
    level = np.sqrt(np.mean(out[1000:-1000].astype(np.float64) ** 2)) / 32768
    assert level == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate": 16000, "width": 3, "channels": 1}, "width 3"),
        ({"rate": 100, "width": 2, "channels": 1}, "rate 100"),
        ({"rate": 16000, "width": 2, "channels": 0}, "0 channels"),
        ({"rate": "16000", "width": 2, "channels": 1}, "integer 'rate'"),
        ({"width": 2, "channels": 1}, "integer 'rate'"),
    ],
)
def test_a_format_that_cannot_be_taken_is_refused_by_name(data: dict[str, object], message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        PcmFormat.of(data)


def test_a_chunk_of_partial_samples_or_another_format_is_refused() -> None:
    pcm = PcmFormat(16000, 2, 2)
    stream = AudioIn(pcm)
    with pytest.raises(AudioFormatError, match="not whole"):
        stream.convert(pcm, b"\x00" * 6)
    with pytest.raises(AudioFormatError, match="within a stream that started in"):
        stream.convert(PcmFormat(16000, 2, 1), b"\x00" * 4)


NAMES = ServiceNames(
    stt=["local/whisper-tiny.en", "openai/whisper-1"],
    tts=["local/piper-joe-medium", "openai/tts-1:alloy"],
    wake_phrase="Hey  Appliance",
    agent="assistant",
    language="en",
)


def test_info_names_the_device_chains_the_wake_phrase_and_the_agent() -> None:
    info = describe(NAMES)
    (asr,) = info.asr
    assert [m.name for m in asr.models] == NAMES.stt and asr.models[0].languages == ["en"]
    (tts,) = info.tts
    assert [v.name for v in tts.voices] == NAMES.tts and tts.supports_synthesize_streaming
    (wake,) = info.wake
    assert wake.models[0].name == "hey_appliance" and wake.models[0].phrase == "Hey  Appliance"
    (handle,) = info.handle
    assert handle.models[0].name == "assistant"
    assert all(p.installed for p in (asr, tts, wake, handle))
    assert wake_model_name("hey appliance") == "hey_appliance"


def test_without_a_language_a_multilingual_chain_lists_whisper_languages() -> None:
    multilingual = ServiceNames(["local/whisper-base"], ["local/piper-joe-medium"], "hey appliance", "a", None)
    english = ServiceNames(["local/whisper-tiny.en"], ["local/piper-joe-medium"], "hey appliance", "a", None)
    assert stt_languages(english) == ["en"]
    languages = stt_languages(multilingual)
    assert {"en", "de", "fr"} <= set(languages)


def test_wyoming_is_off_by_default_and_bad_keys_name_themselves(tmp_path: Path) -> None:
    config = load_config(environ={})
    assert config.wyoming.enabled is False and config.wyoming.port == 10500 and config.wyoming.host == "0.0.0.0"
    path = tmp_path / "appliance.toml"
    path.write_text("[wyoming]\nenabled = true\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"wyoming\.port"):
        load_config(path, environ={})
    path.write_text("[wyoming]\nenabeld = true\n")
    with pytest.raises(ConfigError, match=r"wyoming\.enabeld: unknown key"):
        load_config(path, environ={})


def test_only_an_address_other_boxes_reach_is_announced() -> None:
    assert announced_address("127.0.0.1") is None
    assert announced_address("::1") is None
    assert announced_address("192.168.1.20") == "192.168.1.20"
    assert announced_address("kitchen.local") is None
