"""How tools sound: a slow tool's filler said once, a tool that must not be cut is not cut by the user
talking over it, and a tool that waits for its words to be heard (`ctx.wait_for_playout()`) does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from appliance.agents.agent import Agent
from appliance.agents.context import RunContext
from appliance.agents.tools import function_tool
from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.playback import PlaybackQueue
from appliance.transports.file import FileTransport
from appliance.voice.session import VoiceSession
from appliance.voice.turn_record import TurnRecord
from appliance.voice.turn_state import Providers
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, join, silence, speech
from tests.virtual_clock import run_virtual

LAST_VOICED = 1.5


def talk(
    agent: Agent, audio: AudioChunk, heard: str, marks: dict[str, Any]
) -> tuple[list[TurnRecord], FakeTTS, AudioChunk]:
    async def main() -> tuple[list[TurnRecord], FakeTTS, AudioChunk]:
        tts = FakeTTS()
        stt = FakeSTT(lambda seconds: heard if seconds < 1.5 else "Hold on.")
        session = VoiceSession(Providers(FakeVAD(), stt, FakeLLM(), tts), agent, PlaybackQueue(ENGINE_RATE))
        marks["session"] = session
        records: list[TurnRecord] = []
        session.on_turn.connect(records.append)
        result = await FileTransport(session).run(audio)
        await session.aclose()
        return records, tts, result.output

    return run_virtual(main())


def loud(output: AudioChunk, start: float, end: float) -> bool:
    block = output.samples[int(start * ENGINE_RATE) : int(end * ENGINE_RATE)]
    return bool(np.any(np.abs(block.astype(np.int32)) > 1000))


class Oven(Agent):
    def __init__(self, marks: dict[str, Any], *, uninterruptible: bool = False) -> None:
        super().__init__(instructions="You run the oven.", name="oven")
        self.marks = marks
        self.uninterruptible = uninterruptible

    @function_tool(templates=["preheat the oven"], timeout_s=20)
    async def preheat(self, ctx: RunContext[None]) -> str:
        """Preheat the oven."""
        session: VoiceSession = self.marks["session"]
        await ctx.say("Preheating now.")
        self.marks["said_at"] = session.now
        await ctx.wait_for_playout()
        self.marks["heard_at"], self.marks["queued"] = session.now, session.output.queued_samples
        return "The oven is ready."

    @function_tool(templates=["bake the bread"], timeout_s=20, filler="One moment.", filler_after_s=0.3)
    async def bake(self, ctx: RunContext[None]) -> str:
        """Bake the bread."""
        import asyncio

        if self.uninterruptible:
            ctx.disallow_interruptions()
        await asyncio.sleep(3.0)
        self.marks["baked"] = True
        return "The bread is baked."


def test_wait_for_playout_returns_once_the_tool_s_words_have_been_heard() -> None:
    marks: dict[str, Any] = {}
    records, tts, output = talk(Oven(marks), join(silence(0.5), speech(1.0), silence(6.0)), "Preheat the oven.", marks)
    assert tts.texts == ["Preheating now.", "The oven is ready."]
    line_seconds = 2 * FakeTTS().seconds_per_word  # two words
    assert marks["queued"] == 0  # nothing of the line was still waiting to be played
    assert marks["heard_at"] - marks["said_at"] >= line_seconds - 0.05
    assert loud(output, marks["said_at"], marks["said_at"] + line_seconds - 0.1)
    (record,) = records
    assert record.agent_text == "Preheating now. The oven is ready."


def test_a_slow_tool_says_its_filler_once_however_long_it_takes() -> None:
    marks: dict[str, Any] = {}
    records, tts, _ = talk(Oven(marks), join(silence(0.5), speech(1.0), silence(7.0)), "Bake the bread.", marks)
    assert tts.texts == ["One moment.", "The bread is baked."]
    assert records[0].agent_text == "One moment. The bread is baked."


@pytest.mark.parametrize("uninterruptible", [True, False])
def test_a_tool_that_disallows_interruptions_is_not_cut_by_the_user_talking_while_it_works(
    uninterruptible: bool,
) -> None:
    marks: dict[str, Any] = {}
    # The user talks over the filler, a second after the turn, while the tool still works.
    audio = join(silence(0.5), speech(1.0), silence(1.0), speech(1.6), silence(7.0))
    records, tts, _ = talk(Oven(marks, uninterruptible=uninterruptible), audio, "Bake the bread.", marks)
    first = records[0]
    if uninterruptible:
        assert marks.get("baked") and tts.texts[:2] == ["One moment.", "The bread is baked."]
        assert first.interrupted is False and first.agent_text == "One moment. The bread is baked."
    else:  # the control: without it, the same speech cuts the tool and its reply
        assert "baked" not in marks and "The bread is baked." not in tts.texts
        assert first.interrupted is True
