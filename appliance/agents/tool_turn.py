"""A turn of an agent with tools: up to `max_tool_steps` rounds of "functions are chosen, they run, their
outputs are seen", then the answer in words.

Who chooses depends on the LLM that answers: a cloud LLM calls tools itself (native tool calling); a
small local one is steered by the router (`local_tools.py`: templates, lexical match, constrained
choice), which makes one call and then has the model phrase its result. A sentence template decides
before any LLM is asked. Through a fallback chain the two are raced and fall back like any stream: a
cloud that is late or dead hands the turn to the local router, and a call cut half-way never runs.
If the chain fails after a tool ran, the tool is not run again: whichever LLM still answers phrases
the reply from the outputs already there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from appliance.agents.events import ChatMessageEvent, FunctionCallEvent, FunctionCallOutputEvent
from appliance.agents.local_tools import routed_step
from appliance.agents.repeats import without_repeats
from appliance.agents.router import ArgumentError, ToolChoice, coerce_arguments
from appliance.agents.tool_result import ToolResult, speaks_for_itself
from appliance.agents.tools import FunctionTool
from appliance.providers.base import LLM, ChatMessage, ToolCall, ToolChoiceMode, ToolSpec
from appliance.providers.errors import ProviderFailure

if TYPE_CHECKING:
    from appliance.agents.runtime import AgentRuntime

log = logging.getLogger(__name__)

AFTER_TOOLS = (
    "Answer the user's last message in one short sentence using what the functions returned. "
    "Do not repeat what was already said."
)


def tool_specs(tools: list[FunctionTool]) -> list[ToolSpec]:
    return [ToolSpec(t.name, t.description, t.parameters) for t in tools]


async def tool_turn(
    runtime: AgentRuntime, user_text: str, before_side_effects: Callable[[], Awaitable[None]] | None
) -> AsyncIterator[str]:
    turn = runtime.turn
    history = runtime.chat.for_llm(runtime.agent.instructions, runtime.history_chars)
    messages = [*history, ChatMessage("user", user_text)]
    templated = runtime.router.by_template(user_text, runtime.agent.tools)
    for step in range(runtime.max_tool_steps + 1):
        agent = runtime.agent
        messages[0] = ChatMessage("system", agent.instructions)  # a handoff in the last step changes who speaks
        calls: list[ToolCall] = []
        if step == 0 and templated is not None:
            # The developer said what this sentence means: no LLM is asked, cloud or not.
            calls.append(turn.call(templated.tool.name, templated.arguments, "template"))
            pieces = _nothing()
        else:
            tool_choice: ToolChoiceMode = "auto" if step < runtime.max_tool_steps else "none"  # out of steps: words
            pieces = _text_of(runtime, user_text, messages, tool_choice, calls)
        text = ""
        try:
            async for piece in without_repeats(pieces, turn.said) if turn.said else pieces:
                text += piece
                yield piece
        except ProviderFailure as exc:
            if step == 0:
                raise
            log.warning("the LLM failed after the tools ran (%s); answering from their outputs", exc)
            async for piece in _answer_from_outputs(runtime, messages):
                yield piece
            return
        if not calls:
            runtime.emit(ChatMessageEvent("assistant", text.strip()))
            return
        if text.strip():
            turn.said.append(text)
        if step == 0 and before_side_effects is not None:
            await before_side_effects()
        messages.append(turn.record(tuple(calls), text))
        all_spoken = True
        for call in calls:
            result = ToolResult()
            tool = next((t for t in agent.tools if t.name == call.name), None)
            if tool is None:
                _refuse(runtime, call, result, f"there is no function {call.name}")
            else:
                try:
                    arguments = coerce_arguments(tool, json.loads(call.arguments or "{}") or {})
                except (json.JSONDecodeError, AttributeError, ArgumentError) as exc:
                    _refuse(runtime, call, result, f"bad arguments for {call.name}: {exc}")
                else:
                    async for line in runtime.call_tool(ToolChoice(tool, arguments, call.routed_by), result):
                        yield line
            messages.append(turn.output(call, result))
            if result.handoff is not None:
                await runtime.handoff(result.handoff)
            if tool is not None and speaks_for_itself(tool, result):
                runtime.emit(ChatMessageEvent("assistant", result.output))
                turn.said.append(result.output)
                yield f"{result.output} "
            else:
                all_spoken = False
        if all_spoken:
            return  # every result was said as it is: another LLM round would only restate it


async def _nothing() -> AsyncIterator[str]:
    return
    yield


async def _text_of(
    runtime: AgentRuntime, user_text: str, messages: list[ChatMessage], tool_choice: ToolChoiceMode,
    calls: list[ToolCall],
) -> AsyncIterator[str]:  # fmt: skip
    """The step's text as it streams; the tool calls it ends with go into `calls`."""
    tools = tool_specs(runtime.agent.tools)

    def route(llm: LLM) -> AsyncIterator[str | ToolCall]:
        return routed_step(runtime, llm, user_text, messages)

    stream = runtime.active_llm.stream_with_tools(messages, tools, runtime.options, tool_choice, route=route)
    async for item in stream:
        if isinstance(item, ToolCall):
            calls.append(item)
        else:
            yield item


def _refuse(runtime: AgentRuntime, call: ToolCall, result: ToolResult, why: str) -> None:
    """A call the model got wrong: it hears why in the next step, and nothing runs."""
    runtime.emit(FunctionCallEvent(call.name, {}, call.routed_by))
    result.fail(why)
    runtime.emit(FunctionCallOutputEvent(call.name, why, True))


async def _answer_from_outputs(runtime: AgentRuntime, messages: list[ChatMessage]) -> AsyncIterator[str]:
    text = ""
    asked = [*messages, ChatMessage("system", AFTER_TOOLS)]
    async for piece in without_repeats(runtime.active_llm.stream(asked, runtime.options), runtime.turn.said):
        text += piece
        yield piece
    runtime.emit(ChatMessageEvent("assistant", text.strip()))
