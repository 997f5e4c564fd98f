"""Chat completions from an OpenAI-compatible endpoint, streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from appliance.providers.base import LLM, ChatMessage, LLMOptions
from appliance.providers.cloud.openai_client import Endpoint, make_client, malformed, stream_guard


class OpenAILLM(LLM):
    is_cloud = True

    def __init__(self, endpoint: Endpoint, model: str, descriptor: str, timeout_s: float = 30.0) -> None:
        self.endpoint = endpoint
        self.model = model
        self.descriptor = descriptor
        self._client = make_client(endpoint, timeout_s)

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        async for piece in stream_guard(self.descriptor, self._stream(messages, options)):
            yield piece

    async def _stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        stream: Any = await self._client.chat.completions.create(
            model=self.model,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            stream=True,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            stop=list(options.stop) or None,
        )
        finished = False
        try:
            async for chunk in stream:
                choices = getattr(chunk, "choices", None)
                if choices is None:
                    raise malformed(self.descriptor, "a stream chunk without choices")
                if choices and choices[0].delta and choices[0].delta.content:
                    yield choices[0].delta.content
                if choices and choices[0].finish_reason:
                    finished = True
        finally:
            await stream.close()
        if not finished:
            # A server always ends a completion with a finish reason; a stream that just stops
            # was cut (or was never a stream): the reply is incomplete.
            raise malformed(self.descriptor, "the stream ended before the completion finished")

    async def aclose(self) -> None:
        await self._client.close()
