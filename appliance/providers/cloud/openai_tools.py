"""The OpenAI wire shapes of tools: definitions, tool turns in the history, tool calls streamed in
pieces, and the ways servers take a JSON schema for the output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from appliance.providers.base import ChatMessage, ToolCall, ToolSpec


def api_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def api_tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def api_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Our messages as the API takes them: tool calls on the assistant message, outputs as "tool" messages."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            # An empty string, not null: OpenAI takes either, llama.cpp's server only a string.
            item["tool_calls"] = [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id
        out.append(item)
    return out


class ToolCallCollector:
    """Puts together tool calls that arrive in pieces: the id and name once (some servers repeat
    them in every piece), the arguments' JSON text a few characters at a time."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: Sequence[Any]) -> None:
        for position, delta in enumerate(deltas):
            index = getattr(delta, "index", None)
            call = self._calls.setdefault(position if index is None else index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or (getattr(delta, "id", None) or "")
            function = getattr(delta, "function", None)
            if function is not None:
                call["name"] = call["name"] or (getattr(function, "name", None) or "")
                call["arguments"] += getattr(function, "arguments", None) or ""

    def finished(self) -> list[ToolCall]:
        return [
            ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"] or "{}")
            for index, call in sorted(self._calls.items())
            if call["name"]
        ]


JsonFormat = Callable[[dict[str, Any]], dict[str, Any]]


def json_formats() -> list[JsonFormat]:
    """`response_format`s that constrain the output to a schema, most standard first: OpenAI's (also
    vLLM's, Groq's), then llama.cpp server's `json_object` with a `schema`."""
    return [
        lambda schema: {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        lambda schema: {"type": "json_object", "schema": schema},
    ]
