"""A turn with an LLM that calls tools itself (a cloud model): up to `max_tool_steps` rounds of
"the model asks for functions, they run, the model sees their outputs", then its answer.

The local router (`router.py`) stays the way for a small local model. This path is taken while the
LLM that would answer has native tool calling; if it fails before anything was said or done, the
turn goes to the router with whatever LLM is left (the caller catches `NativeToolsFailed`). If it
fails after a tool ran, the tool is not run again: whichever LLM still answers phrases the reply
from the outputs already there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from appliance.agents.events import ChatMessageEvent, FunctionCallEvent, FunctionCallOutputEvent
from appliance.agents.repeats import without_repeats
from appliance.agents.router import ArgumentError, ToolChoice, coerce_arguments
from appliance.agents.tool_result import ToolResult, speaks_for_itself
from appliance.agents.tools import FunctionTool
from appliance.providers.base import ChatMessage, ToolCall, ToolChoiceMode, ToolSpec
from appliance.providers.errors import ProviderFailure

if TYPE_CHECKING:
    from appliance.agents.runtime import AgentRuntime

log = logging.getLogger(__name__)

AFTER_TOOLS = (
    "Answer the user's last message in one short sentence using what the functions returned. "
    "Do not repeat what was already said."
)


class NativeToolsFailed(Exception):
    """The LLM with native tool calling failed before anything was said or done."""


def tool_specs(tools: list[FunctionTool]) -> list[ToolSpec]:
    return [ToolSpec(t.name, t.description, t.parameters) for t in tools]


async def native_turn(
    runtime: AgentRuntime, user_text: str, before_side_effects: Callable[[], Awaitable[None]] | None
) -> AsyncIterator[str]:
    turn = runtime.turn
    history = runtime.chat.for_llm(runtime.agent.instructions, runtime.history_chars)
    messages = [*history, ChatMessage("user", user_text)]
    for step in range(runtime.max_tool_steps + 1):
        agent = runtime.agent
        messages[0] = ChatMessage("system", agent.instructions)  # a handoff in the last step changes who speaks
        calls: list[ToolCall] = []
        tool_choice: ToolChoiceMode = "auto" if step < runtime.max_tool_steps else "none"  # out of steps: words
        pieces = _text_of(runtime, messages, tool_choice, calls)
        text = ""
        try:
            async for piece in without_repeats(pieces, turn.said) if turn.said else pieces:
                text += piece
                yield piece
        except (ProviderFailure, NotImplementedError) as exc:
            if step == 0:
                raise NativeToolsFailed(str(exc)) from exc
            log.warning("native tool calling failed after the tools ran (%s); answering from their outputs", exc)
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
                    async for line in runtime.call_tool(ToolChoice(tool, arguments, "native"), result):
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


async def _text_of(
    runtime: AgentRuntime, messages: list[ChatMessage], tool_choice: ToolChoiceMode, calls: list[ToolCall]
) -> AsyncIterator[str]:
    """The step's text as it streams; the tool calls it ends with go into `calls`."""
    tools = tool_specs(runtime.agent.tools)
    async for item in runtime.active_llm.stream_with_tools(messages, tools, runtime.options, tool_choice):
        if isinstance(item, ToolCall):
            calls.append(item)
        else:
            yield item


def _refuse(runtime: AgentRuntime, call: ToolCall, result: ToolResult, why: str) -> None:
    """A call the model got wrong: it hears why in the next step, and nothing runs."""
    runtime.emit(FunctionCallEvent(call.name, {}, "native"))
    result.fail(why)
    runtime.emit(FunctionCallOutputEvent(call.name, why, True))


async def _answer_from_outputs(runtime: AgentRuntime, messages: list[ChatMessage]) -> AsyncIterator[str]:
    text = ""
    asked = [*messages, ChatMessage("system", AFTER_TOOLS)]
    async for piece in without_repeats(runtime.active_llm.stream(asked, runtime.options), runtime.turn.said):
        text += piece
        yield piece
    runtime.emit(ChatMessageEvent("assistant", text.strip()))
