"""The simulator's stand-in conversation answers like a device that talks (on a clock, no engines)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.config import AppConfig
from appliance.simulate.conversation import SimulatedConversation
from appliance.voice.announcements import SAY_QUEUE_LIMIT, SayQueueFull
from appliance.voice.turn_record import TurnRecord


async def test_listen_runs_a_turn_through_thinking_and_speaking_and_reports_its_latency() -> None:
    conversation = SimulatedConversation(AppConfig(), latency_ms=640, thinking_s=0.05)
    turns: list[TurnRecord] = []
    conversation.on_turn(turns.append)
    conversation.listen()
    await asyncio.sleep(0.01)
    assert conversation.state().state == "thinking"
    await asyncio.sleep(0.1)
    assert conversation.state().state == "speaking"
    while not turns:
        await asyncio.sleep(0.05)
    assert conversation.state().state == "listening"
    assert turns[0].latency_ms["voice_to_voice"] == 640 and turns[0].agent == "assistant"
    await conversation.aclose()


async def test_says_queue_behind_each_other_are_refused_past_the_limit_and_stop_drops_them() -> None:
    conversation = SimulatedConversation(AppConfig(), latency_ms=500)
    assert conversation.say("a long announcement " * 10) == 0
    assert [conversation.say(f"then {n}") for n in range(SAY_QUEUE_LIMIT)] == list(range(1, SAY_QUEUE_LIMIT + 1))
    with pytest.raises(SayQueueFull):
        conversation.say("one too many")
    await asyncio.sleep(0.01)
    assert conversation.state().state == "speaking"
    assert conversation.stop() is True
    await asyncio.sleep(0.01)
    assert conversation.state().state == "listening" and conversation.stop() is False
    await conversation.aclose()


async def test_mute_volume_agent_and_a_config_change_show_in_its_state() -> None:
    conversation = SimulatedConversation(AppConfig(), latency_ms=500)
    assert conversation.mute(True) and conversation.state().mode == "muted"
    assert conversation.set_volume(140) == 100
    assert await conversation.set_agent("chef") == "chef"
    config = AppConfig.model_validate(
        {"audio": {"volume": 30}, "llm": {"provider": ["openai/gpt-4o-mini"]}, "agent": {"name": "chat"}}
    )
    await conversation.apply_config(config, {"audio": ["volume"], "llm": ["provider"], "agent": ["name"]})
    state = conversation.state()
    assert (state.volume, state.agent, state.providers["llm"], state.muted) == (30, "chat", "openai/gpt-4o-mini", True)
