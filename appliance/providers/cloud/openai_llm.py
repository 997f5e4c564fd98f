"""Chat completions from an OpenAI-compatible endpoint, streamed, with native tool calling and
schema-constrained JSON (what a cloud model does better than the local router)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from appliance.providers.base import LLM, ChatMessage, LLMOptions, Router, ToolCall, ToolChoiceMode, ToolSpec
from appliance.providers.cloud.openai_client import Endpoint, call, make_client, malformed, stream_guard
from appliance.providers.cloud.openai_tools import (
    ToolCallCollector,
    api_messages,
    api_tool_choice,
    api_tools,
    json_formats,
)


class OpenAILLM(LLM):
    is_cloud = True

    @property
    def native_tools(self) -> bool:
        return True

    def __init__(self, endpoint: Endpoint, model: str, descriptor: str, timeout_s: float = 30.0) -> None:
        self.endpoint = endpoint
        self.model = model
        self.descriptor = descriptor
        self._client = make_client(endpoint, timeout_s)
        self._json_formats = json_formats()
        """Ways to ask for JSON fitting a schema, best first; one the server refuses is dropped for good."""

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        async for item in stream_guard(self.descriptor, self._stream(messages, options, None, "none")):
            if isinstance(item, str):
                yield item

    async def stream_with_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        options: LLMOptions,
        tool_choice: ToolChoiceMode = "auto",
        route: Router | None = None,
    ) -> AsyncIterator[str | ToolCall]:
        """Native: `route` is for LLMs that cannot call tools themselves, not needed here."""
        async for item in stream_guard(self.descriptor, self._stream(messages, options, tools, tool_choice)):
            yield item

    async def _stream(
        self,
        messages: Sequence[ChatMessage],
        options: LLMOptions,
        tools: Sequence[ToolSpec] | None,
        tool_choice: ToolChoiceMode,
    ) -> AsyncIterator[str | ToolCall]:
        extra: dict[str, Any] = {}
        if tools:
            extra = {"tools": api_tools(tools), "tool_choice": api_tool_choice(tool_choice)}
        stream: Any = await self._client.chat.completions.create(
            model=self.model,
            messages=api_messages(messages),
            stream=True,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            stop=list(options.stop) or None,
            **extra,
        )
        finished = False
        calls = ToolCallCollector()
        try:
            async for chunk in stream:
                choices = getattr(chunk, "choices", None)
                if choices is None:
                    raise malformed(self.descriptor, "a stream chunk without choices")
                delta = choices[0].delta if choices else None
                if delta is not None and delta.content:
                    yield delta.content
                if delta is not None and getattr(delta, "tool_calls", None):
                    calls.add(delta.tool_calls)
                if choices and choices[0].finish_reason:
                    finished = True
        finally:
            await stream.close()
        if not finished:
            # A server always ends a completion with a finish reason; a stream that just stops
            # was cut (or was never a stream): the reply is incomplete, and so is any tool call in it.
            raise malformed(self.descriptor, "the stream ended before the completion finished")
        for tool_call in calls.finished():
            yield tool_call

    async def complete_json(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        """JSON under the server's own schema constraint: OpenAI's `json_schema`, or llama.cpp's
        `json_object` with a schema when the server refuses the first (remembered: asked once)."""
        while True:
            try:
                response: Any = await call(self.descriptor, lambda: self._json_request(messages, schema))
            except Exception as exc:
                if _format_refused(exc.__cause__) and len(self._json_formats) > 1:
                    self._json_formats.pop(0)
                    continue
                raise
            break
        text = response.choices[0].message.content or ""
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise malformed(self.descriptor, "JSON output that does not parse") from None
        return value if isinstance(value, dict) else {}

    async def _json_request(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> Any:
        return await self._client.chat.completions.create(
            model=self.model,
            messages=api_messages(messages),
            max_tokens=256,
            temperature=0.0,
            response_format=self._json_formats[0](schema),
        )

    async def choose(self, messages: Sequence[ChatMessage], options: Sequence[str]) -> str:
        schema = {"type": "object", "properties": {"choice": {"type": "string", "enum": list(options)}},
                  "required": ["choice"]}  # fmt: skip
        chosen = (await self.complete_json(messages, schema)).get("choice")
        return str(chosen) if chosen in options else options[-1]

    async def aclose(self) -> None:
        await self._client.close()


def _format_refused(exc: BaseException | None) -> bool:
    """The server does not take this `response_format` (a 400 or 422; llama.cpp's server answers its
    validation errors with a 500 that names the field)."""
    import openai

    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        return True
    return isinstance(exc, openai.APIStatusError) and "response_format" in str(exc)
