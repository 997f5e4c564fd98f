"""A provider whose engine can be replaced while conversations run on it (a live `config.set`).

Every session (the device's, each room's, text mode) holds the same swappable STT, LLM and TTS and
looks the engine up at each request, so a swap reaches all of them at their next request. A request
already running finishes on the engine it started on; an old engine is closed only when no request
runs on it any more. Like the fallback adapter, it *is* a provider: the sessions need not know.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, TypeVar

from appliance.audio.frames import AudioChunk, Int16Array
from appliance.providers.base import (
    LLM,
    STT,
    TTS,
    ChatMessage,
    LLMOptions,
    Provider,
    ProviderEvent,
    Router,
    TimedWord,
    ToolCall,
    ToolChoiceMode,
    ToolSpec,
    Transcript,
)

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Provider)


class _Engines(Generic[P]):
    """The current engine, the requests running on each engine, and the retired ones still busy."""

    def __init__(self, engine: P, forward: Callable[[ProviderEvent], None]) -> None:
        self.current = engine
        self._forward = forward
        self._running: dict[int, int] = {}
        self._retired: list[P] = []
        self._closing: set[asyncio.Task[None]] = set()
        engine.on_availability.connect(forward)

    def acquire(self) -> P:
        engine = self.current
        self._running[id(engine)] = self._running.get(id(engine), 0) + 1
        return engine

    def release(self, engine: P) -> None:
        left = self._running.get(id(engine), 1) - 1
        if left:
            self._running[id(engine)] = left
            return
        self._running.pop(id(engine), None)
        if engine in self._retired:
            self._retired.remove(engine)
            self._close_later(engine)

    def busy(self, engine: P) -> bool:
        return id(engine) in self._running

    def replace(self, engine: P) -> P:
        old, self.current = self.current, engine
        old.on_availability.disconnect(self._forward)
        engine.on_availability.connect(self._forward)
        if self.busy(old):
            self._retired.append(old)  # closed by the last request that uses it
        else:
            self._close_later(old)
        return old

    def running(self) -> list[P]:
        return [e for e in (self.current, *self._retired) if self.busy(e)]

    def _close_later(self, engine: P) -> None:
        task = asyncio.get_running_loop().create_task(_close(engine), name=f"close-{engine.descriptor}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        for engine in (self.current, *self._retired):
            await _close(engine)
        self._retired.clear()
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=5.0)


async def _close(engine: Provider) -> None:
    try:
        await engine.aclose()
    except Exception as exc:
        log.warning("closing %s failed: %s", engine.descriptor, exc)


class _Swappable(Provider, Generic[P]):
    def __init__(self, engine: P) -> None:
        self._engines = _Engines(engine, self.on_availability.emit)

    @property
    def engine(self) -> P:
        """The engine new requests go to."""
        return self._engines.current

    @property
    def descriptor(self) -> str:  # type: ignore[override]
        return self._engines.current.descriptor

    @property
    def is_cloud(self) -> bool:  # type: ignore[override]
        return self._engines.current.is_cloud

    def swap(self, engine: P) -> None:
        """New requests go to `engine`; the old one is closed once its running requests end."""
        self._engines.replace(engine)

    def in_use(self, engine: P) -> bool:
        return self._engines.busy(engine)

    async def warm_up(self) -> None:
        engine = self._engines.acquire()
        try:
            await engine.warm_up()
        finally:
            self._engines.release(engine)

    async def aclose(self) -> None:
        await self._engines.aclose()


class SwappableSTT(_Swappable[STT], STT):
    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        engine = self._engines.acquire()
        try:
            return await engine.transcribe(audio, language, prompt)
        finally:
            self._engines.release(engine)

    async def timed_words(
        self, audio: Int16Array, language: str | None = None, prompt: str | None = None
    ) -> list[TimedWord] | None:
        engine = self._engines.acquire()
        try:
            return await engine.timed_words(audio, language, prompt)
        finally:
            self._engines.release(engine)


class SwappableLLM(_Swappable[LLM], LLM):
    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        engine = self._engines.acquire()
        try:
            async for piece in engine.stream(messages, options):
                yield piece
        finally:
            self._engines.release(engine)

    async def stream_with_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        options: LLMOptions,
        tool_choice: ToolChoiceMode = "auto",
        route: Router | None = None,
    ) -> AsyncIterator[str | ToolCall]:
        engine = self._engines.acquire()
        try:
            async for item in engine.stream_with_tools(messages, tools, options, tool_choice, route):
                yield item
        finally:
            self._engines.release(engine)

    async def choose(self, messages: Sequence[ChatMessage], options: Sequence[str]) -> str:
        engine = self._engines.acquire()
        try:
            return await engine.choose(messages, options)
        finally:
            self._engines.release(engine)

    async def complete_json(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        engine = self._engines.acquire()
        try:
            return await engine.complete_json(messages, schema)
        finally:
            self._engines.release(engine)

    def yield_cpu(self) -> None:
        for engine in self._engines.running():
            engine.yield_cpu()

    def resume_cpu(self) -> None:
        for engine in self._engines.running():
            engine.resume_cpu()

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        self.engine.prefill(messages)


class SwappableTTS(_Swappable[TTS], TTS):
    @property
    def sample_rate(self) -> int:  # type: ignore[override]
        return self._engines.current.sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        engine = self._engines.acquire()
        try:
            async for chunk in engine.synthesize(text):
                yield chunk
        finally:
            self._engines.release(engine)
