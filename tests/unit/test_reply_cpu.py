"""The reply gives the cores to the first audio: the LLM is told to yield when the first piece goes to TTS and
to resume once that audio is made, or could not be (a pause left on would stall the rest of the reply)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.audio.frames import AudioChunk
from appliance.config import TimeoutsConfig
from appliance.voice.reply import Reply, ReplyTimeout, fixed_text
from tests.fakes import HANG, FakeLLM, FakeTTS


class PausingLLM(FakeLLM):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def yield_cpu(self) -> None:
        self.events.append("yield")

    def resume_cpu(self) -> None:
        self.events.append("resume")


def speak(tts: FakeTTS, llm: PausingLLM, text: str) -> list[str]:
    """Run a reply; the LLM's events with "audio" where each piece's first audio was played."""

    def play(_chunk: AudioChunk, piece: int) -> None:
        if f"audio {piece}" not in llm.events:
            llm.events.append(f"audio {piece}")

    async def run() -> None:
        reply = Reply(fixed_text(text), tts, play, TimeoutsConfig(tts_first_audio_s=0.2), llm=llm)
        reply.start()
        await reply.wait()

    asyncio.run(run())
    return llm.events


def test_the_llm_yields_for_the_first_audio_and_resumes_once_it_is_made() -> None:
    events = speak(FakeTTS(delay=0.02), PausingLLM(), "The capital of France is Paris. It is big.")
    assert events == ["yield", "resume", "audio 0", "audio 1"]  # later pieces do not pause it again


def test_the_llm_resumes_when_the_first_audio_never_comes() -> None:
    llm = PausingLLM()
    with pytest.raises(ReplyTimeout):
        speak(FakeTTS(delay=HANG), llm, "Hello there.")
    assert llm.events == ["yield", "resume"]
