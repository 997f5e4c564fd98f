"""The typed events of a conversation turn, in the order they happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ChatMessageEvent:
    role: Literal["user", "assistant"]
    content: str
    type: Literal["message"] = "message"


@dataclass(frozen=True)
class FunctionCallEvent:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    routed_by: str = "llm"
    """How the tool was chosen: "template", "lexical", "llm"."""
    type: Literal["function_call"] = "function_call"


@dataclass(frozen=True)
class FunctionCallOutputEvent:
    name: str
    output: str
    is_error: bool = False
    type: Literal["function_call_output"] = "function_call_output"


@dataclass(frozen=True)
class AgentHandoffEvent:
    old_agent: str
    new_agent: str
    type: Literal["agent_handoff"] = "agent_handoff"


RunEvent = ChatMessageEvent | FunctionCallEvent | FunctionCallOutputEvent | AgentHandoffEvent


def describe(event: RunEvent) -> str:
    if isinstance(event, ChatMessageEvent):
        return f"message({event.role}): {event.content!r}"
    if isinstance(event, FunctionCallEvent):
        return f"function_call {event.name}({event.arguments}) [{event.routed_by}]"
    if isinstance(event, FunctionCallOutputEvent):
        return f"function_call_output {event.name}: {event.output!r}" + (" [error]" if event.is_error else "")
    return f"agent_handoff {event.old_agent} -> {event.new_agent}"
