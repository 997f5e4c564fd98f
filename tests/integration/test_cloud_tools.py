"""Tools through a cloud LLM's native tool calling: several steps a turn, bounded, kept in the history,
and a cloud that breaks half-way never makes a tool run twice.

The fault server (an OpenAI-compatible HTTP server on loopback) answers with scripted tool calls,
streamed in pieces as OpenAI streams them, and cuts them where a test asks; llama-cpp-python's
server checks the same wire format against a real implementation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import Agent, AgentSession, function_tool
from appliance.agents.testing import RunResult
from appliance.providers.base import (
    LLM,
    AvailabilityChanged,
    ChatMessage,
    LLMOptions,
    ProviderEvent,
    RaceWon,
    ToolCall,
    ToolSpec,
)
from appliance.providers.cloud.openai_client import Endpoint
from appliance.providers.cloud.openai_llm import OpenAILLM
from appliance.providers.fallback import FallbackLLM, FallbackOptions
from tests.integration.fault_server import Completion, FaultServer
from tests.integration.test_cloud import llama_server, local_llm

__all__ = ["llama_server"]  # a fixture, used by name


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.shutdown()


class Kitchen(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You run the kitchen.", name="kitchen")
        self.calls: list[str] = []

    @function_tool
    async def start_oven(self) -> str:
        """Turn the oven on."""
        self.calls.append("start_oven")
        return "The oven is on."

    @function_tool(say_result=False)
    async def add_to_list(self, item: str) -> str:
        """Add something to the shopping list.

        Args:
            item: what to buy
        """
        self.calls.append(f"add_to_list:{item}")
        return f"Added {item}."


class HotKitchen(Kitchen):
    @function_tool(say_result=False)
    async def oven_temperature(self) -> str:
        """How hot the oven is."""
        self.calls.append("oven_temperature")
        return "180 degrees"


class SlowKitchen(Kitchen):
    @function_tool(say_result=False, filler="One moment.", filler_after_s=0.2)
    async def weigh(self, item: str) -> str:
        """Weigh something on the kitchen scale."""
        await asyncio.sleep(0.6)
        return f"The {item} weighs 200 grams."


def cloud(fault: FaultServer) -> OpenAILLM:
    return OpenAILLM(Endpoint("fault", fault.base_url, "sk-test"), "m", "fault/m")


def converse(llm: LLM, agent: Agent, *inputs: str, max_tool_steps: int = 3) -> list[RunResult]:
    async def main() -> list[RunResult]:
        async with AgentSession(llm=llm, max_tool_steps=max_tool_steps) as session:
            await session.start(agent)
            results = [await session.run(user_input=text) for text in inputs]
        await llm.aclose()
        return results

    return asyncio.run(main())


def roles(body: dict[str, Any]) -> list[str]:
    return [m["role"] for m in body["messages"]]


def test_a_turn_calls_tools_in_several_steps_and_the_next_turn_knows_what_they_did(fault: FaultServer) -> None:
    fault.script = [
        Completion(tool_calls=[("add_to_list", '{"item": "milk"}')]),
        Completion(tool_calls=[("add_to_list", '{"item": "eggs"}')]),
        Completion(text="Milk and eggs are on your list."),
        Completion(text="You added milk and eggs."),
    ]
    kitchen = Kitchen()
    first, second = converse(cloud(fault), kitchen, "I'm out of milk and eggs", "What did you just do?")
    first.expect.next_event().is_function_call(name="add_to_list", arguments={"item": "milk"})
    first.expect.next_event().is_function_call_output(output="Added milk.")
    first.expect.next_event().is_function_call(name="add_to_list", arguments={"item": "eggs"})
    first.expect.next_event().is_function_call_output(output="Added eggs.")
    first.expect.next_event().is_message(role="assistant")
    assert first.text == "Milk and eggs are on your list."
    assert kitchen.calls == ["add_to_list:milk", "add_to_list:eggs"]

    offered = fault.bodies[0]
    assert {t["function"]["name"] for t in offered["tools"]} == {"start_oven", "add_to_list"}
    assert offered["tool_choice"] == "auto"
    item = next(t for t in offered["tools"] if t["function"]["name"] == "add_to_list")["function"]
    assert item["parameters"]["required"] == ["item"] and item["description"] == "Add something to the shopping list."
    call, output = fault.bodies[1]["messages"][-2:]  # the model sees its call and what came of it
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "add_to_list"
    assert output == {"role": "tool", "content": "Added milk.", "tool_call_id": call["tool_calls"][0]["id"]}
    # The next turn's history holds both calls and their outputs, between the two user messages.
    assert roles(fault.bodies[3]) == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "user"]
    assert second.text == "You added milk and eggs."


def test_tool_steps_are_bounded_and_the_last_step_must_answer_in_words(fault: FaultServer) -> None:
    fault.script = [
        Completion(tool_calls=[("oven_temperature", "{}")]),
        Completion(tool_calls=[("oven_temperature", "{}")]),
        Completion(text="It is at 180 degrees."),
    ]
    kitchen = HotKitchen()
    (result,) = converse(cloud(fault), kitchen, "Is the oven hot yet?", max_tool_steps=2)
    assert kitchen.calls == ["oven_temperature", "oven_temperature"]
    assert [b["tool_choice"] for b in fault.bodies] == ["auto", "auto", "none"]
    assert result.text == "It is at 180 degrees."


def test_a_result_said_as_it_is_is_not_said_again_by_the_model(fault: FaultServer) -> None:
    fault.script = [
        Completion(tool_calls=[("start_oven", "{}"), ("oven_temperature", "{}")]),
        Completion(text="The oven is on. It is heating to 180 degrees."),
    ]
    (result,) = converse(cloud(fault), HotKitchen(), "Get the oven going and tell me how hot it is")
    assert result.text.count("The oven is on") == 1, result.text
    assert "180 degrees" in result.text


def test_a_result_said_as_it_is_ends_the_turn_without_asking_the_model_again(fault: FaultServer) -> None:
    fault.script = [Completion(tool_calls=[("start_oven", "{}")])]
    (result,) = converse(cloud(fault), Kitchen(), "Get the oven going")
    assert result.text == "The oven is on." and len(fault.bodies) == 1


def test_two_slow_calls_in_one_turn_say_the_filler_once(fault: FaultServer) -> None:
    fault.script = [
        Completion(tool_calls=[("weigh", '{"item": "flour"}'), ("weigh", '{"item": "sugar"}')]),
        Completion(text="One moment. Both weigh 200 grams."),  # the model restates the filler: not said again
    ]
    (result,) = converse(cloud(fault), SlowKitchen(), "How heavy are the flour and the sugar?")
    assert result.text.count("One moment.") == 1 and result.text.endswith("Both weigh 200 grams."), result.text


def test_bad_calls_from_the_model_run_nothing_and_are_told_back(fault: FaultServer) -> None:
    fault.script = [
        Completion(tool_calls=[("open_fridge", "{}"), ("add_to_list", '{"thing": 1}')]),
        Completion(text="Sorry, I could not do that."),
    ]
    kitchen = Kitchen()
    (result,) = converse(cloud(fault), kitchen, "Do something odd")
    assert kitchen.calls == []
    told = [m["content"] for m in fault.bodies[1]["messages"] if m["role"] == "tool"]
    assert told == ["there is no function open_fridge", "bad arguments for add_to_list: add_to_list is missing item"]
    assert result.text == "Sorry, I could not do that."


def fallback(fault: FaultServer, models_dir: Path) -> FallbackLLM:
    return FallbackLLM([cloud(fault), local_llm(models_dir)], policy="cloud-first")


def test_a_tool_call_cut_half_way_falls_back_to_the_local_router_and_runs_once(
    fault: FaultServer, models_dir: Path
) -> None:
    fault.script = [Completion(tool_calls=[("start_oven", "{}")], cut=True)]
    kitchen = Kitchen()
    llm = fallback(fault, models_dir)
    (result,) = converse(llm, kitchen, "Could you get the oven going")
    assert kitchen.calls == ["start_oven"]  # the cut call never ran; the local router's did, once
    result.expect.next_event().is_function_call(name="start_oven")
    assert result.text == "The oven is on."
    assert llm.status() == {"fault/m": False, "local/smollm2-135m": True}


def test_a_cloud_lost_after_a_tool_ran_does_not_run_it_again(fault: FaultServer, models_dir: Path) -> None:
    fault.script = [
        Completion(tool_calls=[("add_to_list", '{"item": "flour"}')]),
        Completion(text="Done.", cut=True),  # dies before its first word
    ]
    kitchen = Kitchen()
    (result,) = converse(fallback(fault, models_dir), kitchen, "We need flour")
    assert kitchen.calls == ["add_to_list:flour"]
    assert len([e for e in result.events if e.type == "function_call"]) == 1
    assert result.text  # the local model phrased the answer from the output already there


def test_a_cloud_that_never_answers_is_raced_and_the_local_answer_is_heard_alone(
    fault: FaultServer, models_dir: Path
) -> None:
    fault.mode = "hang"  # accepts the request, never says a word
    llm = FallbackLLM(
        [cloud(fault), local_llm(models_dir)],
        policy="cloud-first",
        options=FallbackOptions(deadline_s=4.0, hedge_after_s=0.8),
    )
    events: list[ProviderEvent] = []
    llm.on_availability.connect(events.append)
    kitchen = Kitchen()
    chat, tool = converse(llm, kitchen, "Tell me something nice", "Could you get the oven going")
    assert chat.text and "cloud" not in chat.text  # the local model's words only
    assert kitchen.calls == ["start_oven"] and tool.text == "The oven is on."
    races = [e for e in events if isinstance(e, RaceWon)]
    assert [(r.late, r.winner) for r in races] == [("fault/m", "local/smollm2-135m")] * 2
    assert all(r.after_s < 2.0 for r in races)  # raced long before the 4 s deadline
    assert not [e for e in events if isinstance(e, AvailabilityChanged)]  # late is not down: still tried first


def test_the_wire_format_of_tools_holds_on_a_real_openai_compatible_server(llama_server: str) -> None:
    timer = ToolSpec(
        "set_timer",
        "Set a timer.",
        {"type": "object", "properties": {"minutes": {"type": "integer"}}, "required": ["minutes"]},
    )
    oven = ToolSpec("start_oven", "Turn the oven on.", {"type": "object", "properties": {}, "required": []})
    earlier = ToolCall("call_1", "start_oven", "{}")
    history = [
        ChatMessage("system", "You run a kitchen."),
        ChatMessage("user", "Start the oven."),
        ChatMessage("assistant", "", tool_calls=(earlier,)),
        ChatMessage("tool", "The oven is on.", tool_call_id="call_1"),
        ChatMessage("assistant", "The oven is on."),
        ChatMessage("user", "Set a timer for five minutes."),
    ]
    schema = {"type": "object", "properties": {"minutes": {"type": "integer"}}, "required": ["minutes"]}

    async def main() -> tuple[list[str | ToolCall], dict[str, Any], dict[str, Any]]:
        llm = OpenAILLM(Endpoint("openai", llama_server, None), "smollm2", "openai/smollm2")
        options = LLMOptions(max_tokens=24, temperature=0.0)
        items = [i async for i in llm.stream_with_tools(history, [oven, timer], options, "set_timer")]
        # JSON under a schema: the server refuses OpenAI's json_schema and takes its own form, asked once.
        first = await llm.complete_json(history, schema)
        second = await llm.complete_json(history, schema)
        await llm.aclose()
        return items, first, second

    items, first, second = asyncio.run(main())
    (call,) = [i for i in items if isinstance(i, ToolCall)]
    assert call.name == "set_timer" and isinstance(json.loads(call.arguments)["minutes"], int)
    assert isinstance(first["minutes"], int) and isinstance(second["minutes"], int)
