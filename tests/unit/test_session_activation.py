"""Activation modes and stop phrases in the session, on the virtual clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from appliance.agents.agent import Agent
from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.playback import PlaybackQueue
from appliance.config import ActivationConfig, TimeoutsConfig
from appliance.transports.file import FileTransport
from appliance.voice.activation import ActivationMode
from appliance.voice.session import VoiceSession
from appliance.voice.state import SessionOptions
from appliance.voice.turn_record import TurnRecord
from appliance.voice.turn_state import Providers
from tests.fakes import HANG, FakeLLM, FakeSTT, FakeTTS, FakeVAD, silence, speech
from tests.virtual_clock import run_virtual

Script = Callable[[VoiceSession, FileTransport], Awaitable[None]]


def play(
    script: Script, stt: FakeSTT, llm: FakeLLM | None = None, tts: FakeTTS | None = None, **options: object
) -> tuple[list[TurnRecord], AudioChunk, VoiceSession, FakeLLM, FakeVAD]:
    llm = llm or FakeLLM()
    vad = FakeVAD()

    async def main() -> tuple[list[TurnRecord], AudioChunk, VoiceSession]:
        session = VoiceSession(
            Providers(vad, stt, llm, tts or FakeTTS()),
            Agent(instructions="Be brief."),
            PlaybackQueue(ENGINE_RATE),
            SessionOptions(**options),  # type: ignore[arg-type]
        )
        records: list[TurnRecord] = []
        session.on_turn.connect(records.append)
        transport = FileTransport(session)
        await script(session, transport)
        await transport.drain()
        await session.aclose()
        return records, transport.output(), session

    records, output, session = run_virtual(main())
    return records, output, session, llm, vad


def by_length(*texts: str) -> FakeSTT:
    """The n-th utterance is n seconds long (plus pre-roll); the STT answers texts[n-1]."""
    return FakeSTT(lambda seconds: texts[min(len(texts), max(1, int(seconds))) - 1], delay=0.1)


def utterance(n: int) -> AudioChunk:
    return speech(n + 0.1)


WAKE = ActivationConfig(mode=ActivationMode.WAKE, follow_up_s=5.0)


def test_in_wake_mode_speech_without_the_phrase_gets_no_reply() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        await t.feed(silence(0.5))
        await t.feed(utterance(1))
        await t.feed(silence(2.0))

    records, _, _, llm, _ = play(script, by_length("what time is it"), activation=WAKE)
    assert records == [] and llm.requests == []


def test_the_wake_phrase_chimes_and_the_request_is_answered_without_it() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        await t.feed(silence(0.5))
        await t.feed(utterance(1))
        await t.feed(silence(3.0))

    records, output, _, llm, _ = play(script, by_length("Hey appliance, what time is it?"), activation=WAKE)
    assert [r.user_text for r in records] == ["what time is it?"]
    assert llm.requests[0][-1].content == "what time is it?"
    after_turn = output.samples[int(1.6 * ENGINE_RATE) : int(2.2 * ENGINE_RATE)]
    assert np.any(np.abs(after_turn.astype(np.int32)) > 5000)  # the chime (and then the reply)


def test_follow_up_needs_no_phrase_until_the_window_closes() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        await t.feed(silence(0.5))
        await t.feed(utterance(1))
        await t.feed(silence(3.5))  # reply plays; the window runs 5 s after it
        await t.feed(utterance(2))
        await t.feed(silence(12.0))  # the window closes
        await t.feed(utterance(3))
        await t.feed(silence(2.0))

    stt = by_length("Hey appliance, what time is it?", "and tomorrow?", "and the day after?")
    records, *_ = play(script, stt, activation=WAKE)
    assert [r.user_text for r in records] == ["what time is it?", "and tomorrow?"]


def test_a_stop_phrase_over_the_agent_stops_it_and_gets_no_reply() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        await t.feed(silence(0.5))
        await t.feed(utterance(1))
        await t.feed(silence(1.0))  # the agent is talking
        await t.feed(utterance(2))  # "stop"
        await t.feed(silence(4.0))

    long_reply = "Here is a very long answer. " + "It goes on and on and on. " * 6
    records, output, _, llm, _ = play(script, by_length("tell me a story", "Stop."), llm=FakeLLM(long_reply))
    assert len(records) == 1 and records[0].interrupted is True
    assert len(llm.requests) == 1
    stop_said_at = 0.5 + 1.1 + 1.0
    rest = output.samples[int((stop_said_at + 0.3) * ENGINE_RATE) :]
    assert not np.any(np.abs(rest.astype(np.int32)) > 1000)


def test_muted_hears_nothing_and_runs_no_vad() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        await t.feed(utterance(1))
        await t.feed(silence(2.0))

    records, _, _, _, vad = play(script, by_length("hello"), activation=ActivationConfig(mode=ActivationMode.MUTED))
    assert records == [] and vad.frames == 0


def test_push_to_talk_turns_follow_the_key() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        await t.feed(utterance(1))  # key up: ignored
        await t.feed(silence(1.0))
        session.push_to_talk(True)
        await t.feed(utterance(2))
        await t.feed(silence(0.2))
        session.push_to_talk(False)
        await t.feed(silence(3.0))

    records, _, _, _, vad = play(
        script,
        by_length("ignored", "what time is it"),
        activation=ActivationConfig(mode=ActivationMode.PUSH_TO_TALK),
    )
    assert [r.user_text for r in records] == ["what time is it"]
    assert records[0].latency_ms["end_of_turn"] == 0  # the key ended the turn, not silence
    assert vad.frames == 0


def test_pressing_the_key_stops_the_agent() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        session.push_to_talk(True)
        await t.feed(utterance(1))
        session.push_to_talk(False)
        await t.feed(silence(1.0))  # the agent talks
        session.push_to_talk(True)
        await t.feed(utterance(2))
        session.push_to_talk(False)
        await t.feed(silence(4.0))

    long_reply = "Here is a very long answer. " + "It goes on and on and on. " * 6
    records, *_ = play(
        script,
        by_length("first", "second"),
        llm=FakeLLM(long_reply),
        activation=ActivationConfig(mode=ActivationMode.PUSH_TO_TALK),
    )
    assert [r.interrupted for r in records] == [True, False]
    assert [r.user_text for r in records] == ["first", "second"]


def test_the_mode_can_be_switched_at_run_time() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        session.set_activation_mode(ActivationMode.MUTED)
        await t.feed(utterance(1))
        await t.feed(silence(1.0))
        session.set_activation_mode(ActivationMode.ALWAYS)
        await t.feed(utterance(2))
        await t.feed(silence(3.0))

    records, *_ = play(script, by_length("one", "two"))
    assert [r.user_text for r in records] == ["two"]


def test_an_llm_timeout_is_said_out_loud_and_the_session_listens_again() -> None:
    async def script(session: VoiceSession, t: FileTransport) -> None:
        await t.feed(silence(0.5))
        await t.feed(utterance(1))
        await t.feed(silence(5.0))

    tts = FakeTTS()
    records, output, session, *_ = play(
        script,
        by_length("hello"),
        llm=FakeLLM(first_token_delay=HANG),
        tts=tts,
        timeouts=TimeoutsConfig(llm_first_token_s=2.0, message="Sorry, no answer."),
    )
    assert records[0].error == "LLM first token did not arrive within 2 s"
    assert tts.texts == ["Sorry, no answer."]
    assert np.any(np.abs(output.samples.astype(np.int32)) > 5000)
    assert session.idle
