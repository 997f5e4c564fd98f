"""The Wyoming services of a running appliance, driven by the `wyoming` library's own client: describe,
speech-to-text, text-to-speech, the wake phrase, the agent as a conversation agent, and bad input."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.event import Event, async_read_event
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice
from wyoming.wake import Detect, Detection

from appliance.audio.frames import AudioChunk
from appliance.audio.wav import read_wav
from tests.integration.conftest import DATA
from tests.integration.speech_check import overlap, transcribe
from tests.integration.wyoming_rig import WyomingDevice, audio_events, exchange, received_audio

QUESTIONS = tomllib.loads((DATA / "questions.toml").read_text())["questions"]


@pytest.fixture(scope="module")
def device(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WyomingDevice]:
    """One appliance for the whole module: loading the engines is the slow part."""
    device = WyomingDevice(models_dir, tmp_path_factory.mktemp("wyoming"))
    try:
        yield device
    finally:
        device.close()


def question(n: int) -> tuple[AudioChunk, str]:
    return read_wav(DATA / "questions" / f"q{n:02d}.wav"), QUESTIONS[n - 1]


def padded(*clips: AudioChunk, gap_s: float = 0.8) -> AudioChunk:
    parts = [AudioChunk.silence(gap_s).samples]
    for clip in clips:
        parts += [clip.samples, AudioChunk.silence(gap_s).samples]
    return AudioChunk(np.concatenate(parts), 16000)


def test_describe_lists_the_devices_speech_voice_wake_phrase_and_agent(device: WyomingDevice) -> None:
    result = asyncio.run(exchange(device.port, [Describe().event()], "info"))
    info = Info.from_event(result.events[-1])
    assert [m.name for m in info.asr[0].models] == ["local/whisper-tiny.en"]
    assert info.asr[0].models[0].languages == ["en"]
    assert [v.name for v in info.tts[0].voices] == ["local/piper-joe-medium"]
    assert info.wake[0].models[0].phrase == "hey appliance" and info.wake[0].models[0].name == "hey_appliance"
    assert info.handle[0].models[0].name == "assistant"


@pytest.mark.parametrize(("rate", "width", "channels"), [(16000, 2, 1), (44100, 4, 2)])
def test_asr_transcribes_a_spoken_question_in_any_pcm_format(
    device: WyomingDevice, rate: int, width: int, channels: int
) -> None:
    audio, text = question(2)
    requests = [Transcribe(language="en").event(), *audio_events(padded(audio), rate, width, channels)]
    result = asyncio.run(exchange(device.port, requests, "transcript"))
    heard = Transcript.from_event(result.events[-1]).text
    assert overlap(text, heard) >= 0.8, heard


def test_tts_streams_the_first_sentence_before_the_rest_and_it_is_speech(
    device: WyomingDevice, models_dir: Path
) -> None:
    text = "Done. The kitchen timer has finished and your tea is ready to drink now."
    voice = SynthesizeVoice(name="local/piper-joe-medium")
    result = asyncio.run(exchange(device.port, [Synthesize(text=text, voice=voice).event()], "audio-stop"))
    audio = received_audio(result)
    assert audio.sample_rate == 22050 and audio.duration > 2.0
    assert overlap(text, transcribe(models_dir, audio)) >= 0.8
    first = result.times[[e.type for e in result.events].index("audio-chunk")]
    # The one-word first sentence is out while the long second one is still being synthesized.
    assert first - result.sent_at < 0.6 * (result.times[-1] - result.sent_at)


def test_tts_speaks_text_streamed_word_by_word(device: WyomingDevice, models_dir: Path) -> None:
    text = "Your tea is ready. Enjoy it while it is hot."
    words = [f"{w} " for w in text.split()]
    requests = [
        SynthesizeStart().event(),
        *(SynthesizeChunk(text=w).event() for w in words),
        Synthesize(text=text).event(),  # sent along for servers that cannot stream: not spoken twice
        SynthesizeStop().event(),
    ]
    result = asyncio.run(exchange(device.port, requests, "synthesize-stopped"))
    assert [e.type for e in result.events][-2:] == ["audio-stop", "synthesize-stopped"]
    audio = received_audio(result)
    heard = transcribe(models_dir, audio)
    assert overlap(text, heard) >= 0.8, heard
    assert audio.duration < 6.0  # once, not twice


def test_wake_detects_the_phrase_after_other_talk_and_not_without_it(device: WyomingDevice) -> None:
    talk, _ = question(1)
    wake = read_wav(DATA / "hey_appliance_espeak.wav")
    stream = padded(talk, wake)
    requests = [Detect(names=["hey_appliance"]).event(), *audio_events(stream)]
    result = asyncio.run(exchange(device.port, requests, "detection"))
    detection = Detection.from_event(result.events[-1])
    assert detection.name == "hey_appliance"
    wake_starts_ms = 1000 * (2 * 0.8 + talk.duration)  # after the first question and the gaps around it
    assert detection.timestamp is not None and detection.timestamp > wake_starts_ms

    other, _ = question(2)
    requests = [Detect().event(), *audio_events(padded(talk, other))]
    result = asyncio.run(exchange(device.port, requests, "not-detected"))
    assert [e.type for e in result.events] == ["not-detected"]


def test_handle_answers_with_the_agent_running_its_tool(device: WyomingDevice) -> None:
    result = asyncio.run(exchange(device.port, [Transcript(text="set a timer for five minutes").event()], "handled"))
    answer = Handled.from_event(result.events[-1]).text or ""
    assert overlap("your timer is set for five minutes", answer) == 1.0, answer  # the tool's own words


async def _raw(port: int, lines: list[bytes]) -> list[Event | None]:
    """Bytes no client library would send, each followed by what the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers: list[Event | None] = []
    try:
        for line in lines:
            writer.write(line)
            await writer.drain()
            answers.append(await asyncio.wait_for(async_read_event(reader), 30))
    finally:
        writer.close()
    return answers


def _event(kind: str, data: dict[str, object] | None = None, payload: bytes = b"") -> bytes:
    header: dict[str, object] = {"type": kind, "data": data or {}}
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + payload


def test_bad_input_gets_an_error_event_and_the_server_goes_on(device: WyomingDevice) -> None:
    pcm = {"rate": 16000, "width": 2, "channels": 1}
    cases = [
        (b"\x00\xffgarbage that is not json\n", "bad_event"),
        (_event("audio-stop"), "bad_request"),  # no audio to end
        (_event("audio-chunk", pcm, b"\x01\x02\x03"), "bad_audio"),  # half a sample
        (_event("audio-start", {"rate": 16000, "width": 3, "channels": 1}), "bad_audio"),
        (_event("synthesize", {"text": "hello", "voice": {"name": "nobody"}}), "unknown_voice"),
        (_event("synthesize", {"text": 42}), "bad_event"),
        (_event("synthesize", {}), "bad_event"),
        (_event("detect", {"names": ["alexa"]}), "unknown_wake_word"),
        (_event("synthesize-chunk", {"text": "orphan"}), "bad_request"),
    ]
    answers = asyncio.run(_raw(device.port, [line for line, _ in cases]))
    for (line, code), answer in zip(cases, answers, strict=True):
        assert answer is not None and answer.type == "error", (line, answer)
        assert answer.data["code"] == code and answer.data["text"], (line, answer)

    # The rest of a refused stream is dropped (it was answered once), and so is an event type this server
    # does not know, as the protocol asks; the connection goes on.
    refused, info = asyncio.run(
        _raw(
            device.port,
            [
                _event("audio-start", {"rate": 16000, "width": 3, "channels": 1}),
                _event("audio-chunk", pcm, b"\x00" * 640)
                + _event("audio-stop")
                + _event("some-future-event")
                + _event("describe"),
            ],
        )
    )
    assert refused is not None and refused.data["code"] == "bad_audio"
    assert info is not None and info.type == "info"

    # A conversation request that cannot be answered: the error, and the not-handled a conversation agent
    # (Home Assistant's) waits for.
    error, not_handled = asyncio.run(_raw(device.port, [_event("transcript", {"text": ""}), b""]))
    assert error is not None and error.data["code"] == "bad_event"
    assert not_handled is not None and not_handled.type == "not-handled"

    # A length that cannot be trusted: an error, then the connection closes; the server still serves.
    broken = asyncio.run(_raw(device.port, [b'{"type": "audio-chunk", "payload_length": 99999999999}\n']))
    assert broken[0] is not None and broken[0].data["code"] == "bad_stream"
    result = asyncio.run(exchange(device.port, [Describe().event()], "info"))
    assert result.events[-1].type == "info"


def test_a_port_already_taken_is_said_once_and_the_device_runs_on(
    device: WyomingDevice, models_dir: Path, tmp_path: Path
) -> None:
    second = WyomingDevice(models_dir, tmp_path, port=device.port, wait=False)
    try:
        second.wait_for("wyoming: cannot listen on")
        time.sleep(1.0)
        assert second.proc.poll() is None  # the device runs on without the Wyoming services
        second.close()
        assert second.proc.returncode == 0
        assert second.err.read_text().count("wyoming: cannot listen") == 1
    finally:
        second.close()
