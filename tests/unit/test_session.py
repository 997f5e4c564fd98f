"""The voice session's transitions, on a virtual clock with scripted providers.

Every test runs a conversation through the file transport at real-time pace; the
virtual clock makes the pacing, endpointing delays and timeouts instant and exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from appliance.agents.agent import Agent
from appliance.agents.context import RunContext
from appliance.agents.tools import function_tool
from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.playback import PlaybackQueue
from appliance.config import EndpointingConfig, InterruptionConfig, TimeoutsConfig
from appliance.transports.file import FileTransport
from appliance.voice.session import VoiceSession
from appliance.voice.state import SessionOptions, SessionState
from appliance.voice.turn_record import TurnRecord
from appliance.voice.turn_state import Providers
from tests.fakes import HANG, FakeLLM, FakeSTT, FakeTTS, FakeVAD, join, silence, speech
from tests.virtual_clock import run_virtual


@dataclass
class Run:
    records: list[TurnRecord]
    output: AudioChunk
    states: list[SessionState]
    session: VoiceSession
    llm: FakeLLM
    stt: FakeSTT
    tts: FakeTTS
    input_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def audible_between(self, start: float, end: float) -> bool:
        block = self.output.samples[int(start * ENGINE_RATE) : int(end * ENGINE_RATE)]
        return bool(np.any(np.abs(block.astype(np.int32)) > 1000))

    def first_audible_after(self, start: float) -> float | None:
        block = self.output.samples[int(start * ENGINE_RATE) :]
        loud = np.flatnonzero(np.abs(block.astype(np.int32)) > 1000)
        return None if len(loud) == 0 else start + loud[0] / ENGINE_RATE

    def last_audible(self) -> float:
        loud = np.flatnonzero(np.abs(self.output.samples.astype(np.int32)) > 1000)
        return float(loud[-1]) / ENGINE_RATE if len(loud) else 0.0


def converse(
    audio: AudioChunk,
    *,
    stt: FakeSTT | None = None,
    llm: FakeLLM | None = None,
    tts: FakeTTS | None = None,
    realtime: bool = True,
    on_turn: Callable[[TurnRecord], None] | None = None,
    **options: object,
) -> Run:
    stt, llm, tts = stt or FakeSTT(), llm or FakeLLM(), tts or FakeTTS()

    async def main() -> Run:
        session = VoiceSession(
            Providers(FakeVAD(), stt, llm, tts),
            Agent(instructions="Be brief.", name="tester"),
            PlaybackQueue(ENGINE_RATE),
            SessionOptions(**options),  # type: ignore[arg-type]
        )
        records: list[TurnRecord] = []
        states: list[SessionState] = []
        if on_turn is not None:
            session.on_turn.connect(on_turn)  # before the test's own: a listener that raises must not stop it
        session.on_turn.connect(records.append)
        session.on_state.connect(states.append)
        result = await FileTransport(session, realtime=realtime).run(audio)
        await session.aclose()
        return Run(records, result.output, states, session, llm, stt, tts, result.input_seconds)

    return run_virtual(main())


QUESTION = join(silence(0.5), speech(1.0), silence(3.0))
LAST_VOICED = 1.5


def test_a_question_gets_a_spoken_reply_and_one_turn_record() -> None:
    run = converse(QUESTION)
    assert len(run.records) == 1
    record = run.records[0]
    assert record.user_text == "what time is it?"
    assert record.agent_text == "It is noon. Have a nice day."
    assert record.interrupted is False
    assert record.providers == {"stt": "fake/stt", "llm": "fake/llm", "tts": "fake/tts"}
    assert run.tts.texts == ["It is noon.", "Have a nice day."]
    assert run.states == [SessionState.THINKING, SessionState.SPEAKING, SessionState.LISTENING]


def test_turn_ends_after_min_silence_and_latencies_are_measured_on_the_timeline() -> None:
    run = converse(QUESTION, endpointing=EndpointingConfig(min_silence_ms=300))
    latency = run.records[0].latency_ms
    assert latency["end_of_turn"] == 320  # the first 32 ms frame boundary at or after 300 ms
    # Speculative STT (100 ms) and the held reply were ready before the turn ended,
    # so the reply is heard within one frame of the decision.
    assert latency["stt_final"] is not None and latency["stt_final"] <= 320
    assert latency["llm_ttft"] == 50
    assert latency["tts_ttfb"] == 30
    assert 320 <= (latency["voice_to_voice"] or 0) <= 352
    heard = run.first_audible_after(LAST_VOICED)
    # The record measures from the end of the last voiced VAD frame (32 ms resolution).
    assert heard is not None and abs((heard - LAST_VOICED) * 1000 - latency["voice_to_voice"]) <= 32


def test_reply_is_not_heard_before_the_turn_is_committed() -> None:
    run = converse(QUESTION, endpointing=EndpointingConfig(min_silence_ms=800))
    assert not run.audible_between(LAST_VOICED, LAST_VOICED + 0.8)
    assert run.records[0].latency_ms["end_of_turn"] == 800


def test_an_unfinished_sentence_waits_for_max_silence() -> None:
    run = converse(
        join(silence(0.5), speech(1.0), silence(3.0)),
        stt=FakeSTT("set a timer for"),
        endpointing=EndpointingConfig(min_silence_ms=300, max_silence_ms=1500),
    )
    assert run.records[0].latency_ms["end_of_turn"] == 1504


def test_a_pause_shorter_than_min_silence_keeps_one_turn() -> None:
    audio = join(silence(0.5), speech(0.8), silence(0.2), speech(0.8), silence(3.0))
    run = converse(audio, endpointing=EndpointingConfig(min_silence_ms=300))
    assert len(run.records) == 1
    assert run.stt.calls[-1] >= 1.8  # the final transcript covers both parts


def test_without_preemption_the_reply_starts_after_the_turn_ends() -> None:
    run = converse(QUESTION, endpointing=EndpointingConfig(preemptive=False))
    latency = run.records[0].latency_ms
    # end of turn 320, then LLM 50 + first piece's tokens 20 + TTS 30, then the next frame
    assert (latency["voice_to_voice"] or 0) >= 320 + 50 + 30


def test_noise_with_no_words_makes_no_turn() -> None:
    run = converse(QUESTION, stt=FakeSTT(""))
    assert run.records == []
    assert run.llm.requests == []
    assert not run.audible_between(0, run.output.duration)


def test_empty_and_silent_input_make_no_turn() -> None:
    assert converse(AudioChunk.silence(0)).records == []
    run = converse(silence(2.0))
    assert run.records == [] and run.stt.calls == []
    assert run.output.duration == 2.0


def test_a_reply_without_a_sentence_end_is_still_spoken() -> None:
    run = converse(QUESTION, llm=FakeLLM("sure thing my friend"))
    assert run.tts.texts == ["sure thing my friend"]
    assert run.records[0].agent_text == "sure thing my friend"
    assert run.audible_between(LAST_VOICED, run.output.duration)


def test_barge_in_stops_the_agent_within_200_ms_and_cancels_the_reply() -> None:
    long_reply = "First sentence is here. " + " ".join(["Then many more words follow here."] * 6)
    barge_at = LAST_VOICED + 1.0  # the agent is speaking by then
    audio = join(silence(0.5), speech(1.0), silence(1.0), speech(1.0), silence(3.0))
    run = converse(audio, llm=FakeLLM(long_reply, token_delay=0.05))
    assert run.audible_between(barge_at - 0.3, barge_at)
    assert not run.audible_between(barge_at + 0.2, barge_at + 1.0)
    first, second = run.records
    assert first.interrupted is True
    assert first.agent_text.startswith("First sentence is here.")
    assert len(first.agent_text) < len(long_reply)
    assert run.llm.stopped_early >= 1
    assert second.turn == 2 and second.interrupted is False
    assert run.llm.requests[-1][-2].content == first.agent_text  # history keeps only what was heard


def test_a_short_noise_pauses_the_agent_and_it_resumes() -> None:
    reply = "One two three four five six seven eight."
    blip_at = LAST_VOICED + 0.8
    audio = join(silence(0.5), speech(1.0), silence(0.8), speech(0.1), silence(4.0))
    run = converse(audio, llm=FakeLLM(reply), interruption=InterruptionConfig(min_speech_ms=250, resume_after_ms=300))
    assert len(run.records) == 1 and run.records[0].interrupted is False
    assert not run.audible_between(blip_at + 0.1, blip_at + 0.35)  # paused while judged
    heard = np.count_nonzero(np.abs(run.output.samples.astype(np.int32)) > 1000) / ENGINE_RATE
    assert abs(heard - 8 * 0.25) < 0.01  # every word was played, none twice


def test_speech_while_thinking_joins_the_same_turn() -> None:
    # The user goes on talking after the turn was committed but before any audio: their words are kept.
    audio = join(silence(0.5), speech(1.0), silence(0.35), speech(1.0), silence(3.0))
    stt = FakeSTT(lambda seconds: f"{seconds:.1f} seconds of speech", delay=0.1)
    run = converse(
        audio, stt=stt, llm=FakeLLM(first_token_delay=0.5), endpointing=EndpointingConfig(min_silence_ms=300)
    )
    assert len(run.records) == 1
    assert run.stt.calls[-1] > 2.0


def test_an_llm_that_never_answers_times_out_and_the_session_listens_again() -> None:
    audio = join(QUESTION, speech(1.0), silence(3.0))
    llm = FakeLLM(first_token_delay=HANG)
    run = converse(audio, llm=llm, timeouts=TimeoutsConfig(llm_first_token_s=2.0))
    assert run.records[0].error == "LLM first token did not arrive within 2 s"
    assert len(run.records) == 2  # the next question was heard
    assert run.session.state is SessionState.LISTENING


def test_tts_that_hangs_times_out() -> None:
    run = converse(QUESTION, tts=FakeTTS(delay=HANG), timeouts=TimeoutsConfig(tts_first_audio_s=1.0))
    assert run.records[0].error == "TTS first audio did not arrive within 1 s"


def test_stt_that_hangs_times_out() -> None:
    run = converse(QUESTION, stt=FakeSTT(delay=HANG), timeouts=TimeoutsConfig(stt_s=2.0))
    assert run.records[0].error is not None
    assert run.llm.requests == []


def test_a_turn_that_never_stops_is_cut_at_max_turn() -> None:
    audio = join(silence(0.5), speech(6.0), silence(2.0))
    run = converse(audio, endpointing=EndpointingConfig(max_turn_s=3.0), interruption=InterruptionConfig(enabled=False))
    assert run.records[0].latency_ms["end_of_turn"] == 0
    assert 2.9 <= run.stt.calls[0] <= 3.4


def test_history_is_sent_to_the_llm_on_the_next_turn() -> None:
    audio = join(QUESTION, speech(1.0), silence(3.0))
    run = converse(audio)
    second_request = run.llm.requests[-1]
    assert [m.role for m in second_request] == ["system", "user", "assistant", "user"]
    assert second_request[2].content == "It is noon. Have a nice day."


def test_fast_mode_keeps_the_timeline_and_spends_no_audio_time_computing() -> None:
    slow = FakeLLM(first_token_delay=2.0)
    run = converse(QUESTION, llm=slow, realtime=False, endpointing=EndpointingConfig(preemptive=False))
    assert len(run.records) == 1
    # 2 s of LLM time are not on the timeline: the reply starts right after the turn decision.
    assert (run.records[0].latency_ms["voice_to_voice"] or 0) <= 400


def test_the_agent_instructions_are_the_system_prompt() -> None:
    run = converse(QUESTION)
    assert run.llm.requests[0][0].role == "system"
    assert run.llm.requests[0][0].content == "Be brief."


def test_a_tool_call_shows_in_the_turn_record_and_a_timer_rings_while_idle() -> None:
    from appliance.agents.builtin.home import HomeAssistant

    async def main() -> tuple[list[TurnRecord], AudioChunk, FakeTTS]:
        tts = FakeTTS()
        session = VoiceSession(
            Providers(FakeVAD(), FakeSTT("Set a timer for one minute."), FakeLLM(), tts),
            HomeAssistant(),
            PlaybackQueue(ENGINE_RATE),
        )
        records: list[TurnRecord] = []
        session.on_turn.connect(records.append)
        transport = FileTransport(session)
        await transport.feed(QUESTION)
        await transport.feed(silence(70.0))  # nobody talks; the timer rings at about 61.5 s
        await transport.drain()
        await session.aclose()
        return records, transport.output(), tts

    records, output, tts = run_virtual(main())
    (record,) = records  # the ring is not a user turn
    assert record.tool_calls == [{"name": "set_timer", "arguments": {"minutes": 1}}]
    assert record.agent_text == "Okay, your timer is set for 1 minute."
    assert tts.texts == ["Okay, your timer is set for 1 minute.", "Your timer is done."]
    loud = np.flatnonzero(np.abs(output.samples.astype(np.int32)) > 1000) / ENGINE_RATE
    assert any(61.0 < t < 64.0 for t in loud)  # heard a minute after it was set


def test_a_volume_tool_changes_the_loudness_of_what_follows() -> None:
    from appliance.agents.builtin.home import HomeAssistant

    async def main() -> AudioChunk:
        session = VoiceSession(
            Providers(FakeVAD(), FakeSTT("Set the volume to fifty."), FakeLLM(), FakeTTS()),
            HomeAssistant(),
            PlaybackQueue(ENGINE_RATE),
        )
        transport = FileTransport(session)
        await transport.feed(QUESTION)
        await transport.drain()
        await session.aclose()
        return transport.output()

    output = run_virtual(main())
    assert int(np.abs(output.samples.astype(np.int32)).max()) == 4000  # FakeTTS speaks at 8000


def test_after_a_handoff_the_new_agent_speaks_with_its_own_voice_and_the_record_names_it() -> None:
    from appliance import Agent, function_tool

    chef_voice = FakeTTS()

    class Host(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="Host.", name="host")

        @function_tool(templates=["what time is it"])
        async def to_chef(self) -> tuple[str, Agent]:
            """Hand over to the chef."""
            return "Here is the chef.", Agent(instructions="Chef.", name="chef", tts=chef_voice)

    async def main() -> tuple[list[TurnRecord], FakeTTS]:
        host_voice = FakeTTS()
        session = VoiceSession(
            Providers(FakeVAD(), FakeSTT("what time is it"), FakeLLM("Stir well."), host_voice),
            Host(),
            PlaybackQueue(ENGINE_RATE),
        )
        records: list[TurnRecord] = []
        session.on_turn.connect(records.append)
        transport = FileTransport(session)
        await transport.feed(join(QUESTION, speech(1.0), silence(3.0)))
        await transport.drain()
        await session.aclose()
        return records, host_voice

    records, host_voice = run_virtual(main())
    assert [r.agent for r in records] == ["chef", "chef"]
    assert records[0].tool_calls == [{"name": "to_chef", "arguments": {}}]
    assert host_voice.texts == []  # the handoff happened before the first word was spoken
    assert chef_voice.texts[0] == "Here is the chef."


def test_a_tool_that_speaks_while_it_works_is_heard_in_the_reply_without_waiting_for_the_turn() -> None:
    """`ctx.session.say` inside a tool goes into the turn's reply; waiting for the turn to end would never
    end (the turn waits for the tool)."""

    class Shelves(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You find books.", name="shelves")

        @function_tool(templates=["find the book {title}"], timeout_s=5)
        async def find_book(self, ctx: RunContext[None], title: str) -> str:
            """Find a book."""
            await ctx.session.say("Let me check the shelves.")
            return f"{title.capitalize()} is on shelf three."

    async def main() -> tuple[list[TurnRecord], FakeTTS]:
        tts = FakeTTS()
        session = VoiceSession(
            Providers(FakeVAD(), FakeSTT("Find the book dune."), FakeLLM(), tts), Shelves(), PlaybackQueue(ENGINE_RATE)
        )
        records: list[TurnRecord] = []
        session.on_turn.connect(records.append)
        transport = FileTransport(session)
        await transport.feed(QUESTION)
        await transport.drain()
        await session.aclose()
        return records, tts

    records, tts = run_virtual(main())
    (record,) = records
    assert tts.texts == ["Let me check the shelves.", "Dune is on shelf three."]
    assert record.tool_calls == [{"name": "find_book", "arguments": {"title": "dune"}}]
    assert not record.error and "did not finish" not in record.agent_text


def test_a_tool_that_disallows_interruptions_is_heard_whole_and_only_for_its_turn() -> None:
    long_result = "Your order is placed. " + " ".join(["It arrives on Tuesday morning."] * 6)

    class Shop(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You take orders.", name="shop")

        @function_tool(templates=["place the order"], say_result=True)
        async def place_order(self, ctx: RunContext[None]) -> str:
            """Place the order."""
            ctx.disallow_interruptions()
            return long_result

    barge_at = LAST_VOICED + 1.0
    audio = join(silence(0.5), speech(1.0), silence(1.0), speech(1.0), silence(12.0))

    async def main() -> tuple[list[TurnRecord], AudioChunk, VoiceSession]:
        stt = FakeSTT(lambda seconds: "Place the order." if seconds < 1.5 else "Wait a moment.")
        session = VoiceSession(Providers(FakeVAD(), stt, FakeLLM(), FakeTTS()), Shop(), PlaybackQueue(ENGINE_RATE))
        records: list[TurnRecord] = []
        session.on_turn.connect(records.append)
        result = await FileTransport(session).run(audio)
        await session.aclose()
        return records, result.output, session

    records, output, session = run_virtual(main())
    first = records[0]
    assert first.interrupted is False and first.agent_text == long_result.strip()
    block = output.samples[int((barge_at + 0.2) * ENGINE_RATE) : int((barge_at + 1.0) * ENGINE_RATE)]
    assert np.any(np.abs(block.astype(np.int32)) > 1000)  # still speaking over the user
    assert session.runtime.uninterruptible is False  # the next turn may be interrupted again
