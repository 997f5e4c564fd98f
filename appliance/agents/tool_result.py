"""What a tool call came to, and what a turn did with tools (for the chat history and for not
saying things twice)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from appliance.agents.agent import Agent
from appliance.agents.tools import FunctionTool
from appliance.providers.base import ChatMessage, ToolCall


class ToolResult:
    def __init__(self) -> None:
        self.output = ""
        self.is_error = False
        self.handoff: Agent | None = None

    def accept(self, value: Any) -> None:
        """A tool's return: a result, an Agent to hand over to, or the two as a pair in either order
        (`(NewAgent(), "message")` as in LiveKit Agents, or `(result, NewAgent())`)."""
        if isinstance(value, Agent):
            self.handoff, value = value, f"Handing over to {value.name}."
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Agent):
            value, self.handoff = value
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Agent):
            self.handoff, value = value
        self.output = "done" if value is None else str(value)

    def fail(self, message: str) -> None:
        self.output = message
        self.is_error = True


def speaks_for_itself(tool: FunctionTool, result: ToolResult) -> bool:
    """The result is said as it is, and no LLM is asked to phrase it."""
    if result.is_error or not result.output:
        return False
    if tool.say_result is not None:
        return tool.say_result
    text = result.output.strip()
    return len(text) <= 300 and text[-1] in ".!?" and text[0].isupper()


@dataclass
class TurnLog:
    """One turn's tool work: its calls and outputs (kept in the chat history once the turn is heard)
    and what was said before the LLM's own words (a filler, a tool's lines, a result said as is)."""

    history: list[ChatMessage] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    """The calls whose tool failed (by call id)."""
    calls: int = 0

    def call(self, name: str, arguments: dict[str, Any], routed_by: str) -> ToolCall:
        """A call the router or a template made, named like an LLM's, so the history has one shape."""
        self.calls += 1
        return ToolCall(f"call_{self.calls}", name, json.dumps(arguments), routed_by)

    def record(self, calls: tuple[ToolCall, ...], text: str = "") -> ChatMessage:
        message = ChatMessage("assistant", text.strip(), tool_calls=calls)
        self.history.append(message)
        return message

    def output(self, call: ToolCall, result: ToolResult) -> ChatMessage:
        message = ChatMessage("tool", result.output, tool_call_id=call.call_id)
        self.history.append(message)
        if result.is_error:
            self.failed.add(call.call_id)
        return message
