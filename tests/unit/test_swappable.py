"""A live provider swap: every conversation follows at its next request, and no engine is closed under a
request that still runs on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from appliance.agents.agent import Agent
from appliance.audio.frames import ENGINE_RATE
from appliance.audio.playback import PlaybackQueue
from appliance.providers.base import ChatMessage, LLMOptions
from appliance.providers.swappable import SwappableLLM, SwappableSTT, SwappableTTS
from appliance.transports.file import FileTransport
from appliance.voice.session import VoiceSession
from appliance.voice.turn_record import TurnRecord
from appliance.voice.turn_state import Providers
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, join, silence, speech
from tests.virtual_clock import run_virtual


class ClosableLLM(FakeLLM):
    """Records when it is closed and whether a request was still running on it then."""

    def __init__(self, name: str, first_token_delay: float = 0.05) -> None:
        super().__init__(f"This is {name}.", first_token_delay=first_token_delay)
        self.descriptor = f"fake/{name}"
        self.running = 0
        self.closed = False
        self.closed_while_running = False

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        self.running += 1
        try:
            async for piece in super().stream(messages, options):
                yield piece
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        self.closed = True
        self.closed_while_running = self.running > 0


def new_session(providers: Providers, records: list[TurnRecord]) -> VoiceSession:
    session = VoiceSession(providers, Agent(instructions="Be brief.", name="tester"), PlaybackQueue(ENGINE_RATE))
    session.on_turn.connect(records.append)
    return session


def test_two_sessions_follow_a_swap_and_the_old_engine_closes_only_after_its_last_request() -> None:
    old, new = ClosableLLM("old", first_token_delay=2.0), ClosableLLM("new")
    llm = SwappableLLM(old)
    providers = Providers(FakeVAD(), SwappableSTT(FakeSTT()), llm, SwappableTTS(FakeTTS()))
    device_records: list[TurnRecord] = []
    room_records: list[TurnRecord] = []
    question = join(speech(1.0), silence(5.0))

    async def main() -> tuple[bool, bool]:
        device = new_session(providers, device_records)
        room = new_session(providers, room_records)
        device_line, room_line = FileTransport(device), FileTransport(room)
        first = asyncio.create_task(device_line.feed(question))  # the old engine answers slowly
        while old.running == 0:
            await asyncio.sleep(0.01)
        llm.swap(new)
        await asyncio.sleep(0)
        closed_during_request = old.closed
        await room_line.feed(question)  # the other conversation, after the swap
        await first
        await device_line.feed(question)  # the device's next question
        await device_line.drain()
        await room_line.drain()
        await device.aclose()
        await room.aclose()
        await asyncio.sleep(0.01)  # the old engine's close runs in the background
        return closed_during_request, llm.in_use(old)

    closed_during_request, still_in_use = run_virtual(main())
    assert not closed_during_request, "the old engine was closed while a request ran on it"
    assert old.closed and not old.closed_while_running and not still_in_use
    assert [r.agent_text for r in device_records] == ["This is old.", "This is new."]
    assert [r.agent_text for r in room_records] == ["This is new."]
    assert device_records[1].providers["llm"] == room_records[0].providers["llm"] == "fake/new"
    assert old.completed == 1 and new.completed == 2


def test_an_idle_old_engine_is_closed_at_once_and_closing_the_swappable_closes_the_current() -> None:
    old, new = ClosableLLM("old"), ClosableLLM("new")

    async def main() -> tuple[bool, bool]:
        llm = SwappableLLM(old)
        llm.swap(new)
        await asyncio.sleep(0.01)
        closed_old = old.closed
        await llm.aclose()
        return closed_old, new.closed

    assert run_virtual(main()) == (True, True)
