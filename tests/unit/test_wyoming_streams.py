"""The Wyoming services' stream logic on scripted engines: when the early transcript is used, wake
utterances, streamed text, and an engine failure answered with an error while the connection goes on."""

from __future__ import annotations

import asyncio

from wyoming.event import Event

from appliance.agents.agent import Agent
from appliance.audio.frames import AudioChunk
from appliance.config import ActivationConfig, VadConfig
from appliance.providers.base import STT, LLMOptions, Transcript
from appliance.voice.text_conversation import TextConversation
from appliance.wyoming.asr import AsrOptions, Transcription
from appliance.wyoming.connection import Connection
from appliance.wyoming.describe import ServiceNames
from appliance.wyoming.handle import AgentAnswers
from appliance.wyoming.services import WyomingServices
from appliance.wyoming.wake import WakeOptions, WakeSpotter
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, join, silence, speech

OPTIONS = AsrOptions("en", VadConfig(), speculate_after_s=0.3)


async def _push(stream: Transcription | WakeSpotter, audio: AudioChunk, block_s: float = 0.02) -> list[float]:
    found = []
    step = round(block_s * audio.sample_rate)
    for at in range(0, len(audio), step):
        result = await stream.push(audio.samples[at : at + step])
        if isinstance(result, float):
            found.append(result)
    return found


def test_the_transcript_started_in_the_end_silence_is_the_answer() -> None:
    async def main() -> None:
        stt = FakeSTT("what time is it", delay=0.05)
        stream = Transcription(stt, FakeVAD(), OPTIONS)
        await _push(stream, join(silence(0.3), speech(1.0), silence(0.7)))
        transcript = await stream.finish(silence(0).samples)
        assert transcript.text == "what time is it" and stream.used_early
        assert len(stt.calls) == 1 and 1.5 <= stt.calls[0] <= 1.75  # started ~0.3 s into the silence

    asyncio.run(main())


def test_speech_after_the_early_transcript_makes_a_new_one_over_everything() -> None:
    async def main() -> None:
        stt = FakeSTT(lambda seconds: f"{seconds:.1f}", delay=0.05)
        stream = Transcription(stt, FakeVAD(), OPTIONS)
        await _push(stream, join(speech(1.0), silence(0.5), speech(0.5), silence(0.1)))
        transcript = await stream.finish(silence(0).samples)
        assert not stream.used_early
        assert transcript.text == "2.1"  # the whole stream, not the part before the pause

    asyncio.run(main())


def test_a_stream_with_no_speech_heard_is_transcribed_whole_at_the_end() -> None:
    async def main() -> None:
        stt = FakeSTT("", delay=0.0)
        stream = Transcription(stt, FakeVAD(), OPTIONS)
        await _push(stream, silence(1.0))
        await stream.finish(silence(0).samples)
        assert stt.calls == [1.0] and not stream.used_early

    asyncio.run(main())


def _wake(stt: STT) -> WakeSpotter:
    return WakeSpotter(stt, FakeVAD(), WakeOptions(ActivationConfig(), "en", VadConfig()))


def test_the_wake_phrase_is_found_in_its_utterance_and_not_in_others() -> None:
    async def main() -> None:
        heard = iter(["the kettle is on", "hey appliance, what time is it"])
        spotter = _wake(FakeSTT(lambda _s: next(heard), delay=0.0))
        found = await _push(spotter, join(silence(0.5), speech(1.0), silence(0.5), speech(1.0), silence(0.5)))
        assert len(found) == 1 and 3.0 <= found[0] <= 3.3  # the end of the second utterance

    asyncio.run(main())


def test_a_long_utterance_is_checked_once_after_its_first_seconds() -> None:
    async def main() -> None:
        stt = FakeSTT("hey appliance tell me a long story about the sea", delay=0.0)
        spotter = _wake(stt)
        found = await _push(spotter, join(speech(6.0), silence(0.5)))
        assert len(stt.calls) == 1 and stt.calls[0] < 3.0
        assert len(found) == 1 and found[0] < 3.0  # found while the user still talks

    asyncio.run(main())


def test_an_hour_long_wake_stream_keeps_only_its_last_seconds_and_still_hears_the_phrase() -> None:
    async def main() -> None:
        stt = FakeSTT(lambda seconds: "hey appliance" if seconds < 1.5 else "the kettle is on", delay=0.0)
        spotter = _wake(stt)
        talk = join(speech(2.0), silence(1.0))
        for _ in range(200):  # ten minutes of unrelated talk
            assert await _push(spotter, talk, block_s=0.5) == []
            assert spotter._track.kept_samples <= 2 * (2.5 + 2.0) * 16000
        found = await _push(spotter, join(speech(1.0), silence(0.5)), block_s=0.5)
        assert len(found) == 1 and found[0] > 600

    asyncio.run(main())


class FailingSTT(STT):
    descriptor = "fake/broken"

    async def transcribe(self, audio: object, language: str | None = None, prompt: str | None = None) -> Transcript:
        raise RuntimeError("the engine fell over")


def _connection(stt: STT, sent: list[Event]) -> Connection:
    async def write(event: Event) -> None:
        sent.append(event)

    names = ServiceNames(["fake/stt"], ["fake/tts"], "hey appliance", "assistant", "en")
    conversation = TextConversation(FakeLLM("Fine."), Agent(instructions="Be brief."), LLMOptions())
    services = WyomingServices(
        stt=stt,
        tts=FakeTTS(delay=0.0),
        vad=FakeVAD(),
        agent=AgentAnswers(conversation),
        names=names,
        asr=OPTIONS,
        wake=WakeOptions(ActivationConfig(), "en", VadConfig()),
    )
    return Connection(services, write)


def _audio(seconds: float) -> list[Event]:
    pcm = {"rate": 16000, "width": 2, "channels": 1}
    payload = speech(seconds).samples.astype("<i2").tobytes()
    return [Event("audio-start", pcm), Event("audio-chunk", pcm, payload), Event("audio-stop")]


def test_an_engine_failure_is_an_error_event_then_the_connection_ends() -> None:
    async def main() -> tuple[list[Event], list[bool]]:
        sent: list[Event] = []
        connection = _connection(FailingSTT(), sent)
        go_on = [await connection.handle(e) for e in [Event("transcribe", {"language": "en-US"}), *_audio(0.5)]]
        await connection.aclose()
        return sent, go_on

    sent, go_on = asyncio.run(main())
    assert go_on == [True, True, True, False]  # the failed request's connection closes: no client waits on
    assert [e.type for e in sent] == ["error"]
    assert sent[0].data["code"] == "failed" and "fell over" in sent[0].data["text"]


def test_a_conversation_request_that_cannot_be_answered_is_also_not_handled() -> None:
    async def main() -> list[Event]:
        sent: list[Event] = []
        connection = _connection(FakeSTT(), sent)
        assert await connection.handle(Event("transcript", {"text": "  "}))
        assert await connection.handle(Event("transcript", {"text": "how are you"}))
        return sent

    sent = asyncio.run(main())
    assert [e.type for e in sent] == ["error", "not-handled", "handled"]
    assert sent[2].data["text"] == "Fine."


def test_streamed_text_is_spoken_sentence_by_sentence_and_once() -> None:
    async def main() -> tuple[list[Event], list[str]]:
        sent: list[Event] = []
        connection = _connection(FakeSTT(), sent)
        tts = connection.services.tts
        assert isinstance(tts, FakeTTS)
        text = "Your tea is ready. Enjoy it."
        events = [Event("synthesize-start")]
        events += [Event("synthesize-chunk", {"text": f"{w} "}) for w in text.split()]
        events += [Event("synthesize", {"text": text}), Event("synthesize-stop")]
        for event in events:
            await connection.handle(event)
        return sent, tts.texts

    sent, spoken = asyncio.run(main())
    assert spoken == ["Your tea is ready.", "Enjoy it."]
    kinds = [e.type for e in sent]
    assert kinds[0] == "audio-start" and kinds[-2:] == ["audio-stop", "synthesize-stopped"]
    assert kinds.count("audio-start") == 1 and "error" not in kinds
