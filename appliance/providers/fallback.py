"""Fallback adapters: an STT, LLM or TTS made of several, that answers while any of them works.

Each child has a small status. A request goes to the first usable child in policy order
(`local-first`: as configured; `cloud-first`: cloud children first while online). A child that
fails before producing anything (an error, or no first token / first audio / result within its
deadline) is marked unavailable with the failure's category, an availability event is sent, and
the next child is tried. Nothing switches after output has started: a stream cut half-way ends
the reply with what was produced, so no text is said twice. Unavailable children are probed in
the background with backoff (longer for permanent errors, honouring Retry-After) and used again
once they answer. A failure is the adapter's business: the turn fails only if every child does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from appliance.audio.frames import AudioChunk, Int16Array
from appliance.providers.base import (
    LLM,
    STT,
    TTS,
    AvailabilityChanged,
    ChatMessage,
    LLMOptions,
    Provider,
    RaceWon,
    Router,
    TimedWord,
    ToolCall,
    ToolChoiceMode,
    ToolSpec,
    Transcript,
)
from appliance.providers.connectivity import Connectivity
from appliance.providers.errors import ErrorCategory, ProviderFailure, category_of_exception
from appliance.providers.hedge import hedge_delay, race

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Provider)
T = TypeVar("T")
Policy = Literal["local-first", "cloud-first"]


@dataclass
class FallbackOptions:
    deadline_s: float = 4.0
    """First token / first audio / result."""
    probe_initial_s: float = 5.0
    probe_max_s: float = 120.0
    permanent_probe_s: float = 300.0
    hedge_after_s: float | None = None
    """Race a late child with the next one after at most this long (sooner if it is usually quicker);
    None: no racing, the next child starts only once the first has failed or missed its deadline."""


class _Child(Generic[P]):
    def __init__(self, provider: P) -> None:
        self.provider = provider
        self.available = True
        self.category: ErrorCategory | None = None
        self.probe: asyncio.Task[None] | None = None
        self.first_output_s: deque[float] = deque(maxlen=20)
        """Its recent times to a first output: what "late" means for it."""

    @property
    def is_cloud(self) -> bool:
        return self.provider.is_cloud


class _Fallback(Provider, Generic[P]):
    stage = ""

    def __init__(
        self,
        children: Sequence[P],
        *,
        policy: Policy = "local-first",
        connectivity: Connectivity | None = None,
        options: FallbackOptions | None = None,
    ) -> None:
        if not children:
            raise ValueError("a fallback chain needs at least one provider")
        self._children = [_Child(c) for c in children]
        self.policy = policy
        self.connectivity = connectivity or Connectivity()
        self.fallback_options = options or FallbackOptions()
        self.descriptor = self._children[0].provider.descriptor
        """The child that answered last (what the turn record shows)."""
        for child in self._children:
            endpoint = getattr(child.provider, "endpoint", None)
            if endpoint is not None:
                self.connectivity.add_host(*endpoint.host_port)

    @property
    def children(self) -> list[P]:
        return [c.provider for c in self._children]

    def reset_status(self) -> None:
        """Forget past failures: the next request tries every child in order again."""
        for child in self._children:
            if child.probe is not None:
                child.probe.cancel()
            child.available, child.category, child.probe = True, None, None

    def status(self) -> dict[str, bool]:
        return {c.provider.descriptor: c.available for c in self._children}

    def _order(self) -> list[_Child[P]]:
        """Usable children first, in policy order; unusable ones last (tried only if all else fails)."""
        children = list(self._children)
        if self.policy == "cloud-first":
            children.sort(key=lambda c: not c.is_cloud)
        offline = not self.connectivity.online
        usable = [c for c in children if c.available and not (offline and c.is_cloud)]
        rest = [c for c in children if c not in usable and not (offline and c.is_cloud)]
        rest = [c for c in rest if c.category is not ErrorCategory.PERMANENT]
        return usable + rest

    def _failed(self, child: _Child[P], exc: BaseException) -> ProviderFailure:
        failure = (
            exc
            if isinstance(exc, ProviderFailure)
            else ProviderFailure(child.provider.descriptor, category_of_exception(exc), f"{type(exc).__name__}: {exc}")
        )
        if failure.category is ErrorCategory.OFFLINE and child.is_cloud:
            self.connectivity.went_offline(str(failure))
        log.warning("%s %s failed (%s); falling back", self.stage, child.provider.descriptor, failure)
        child.category = failure.category
        if child.available:
            child.available = False
            self._emit(child, False, failure.category.value)
        if child.probe is None or child.probe.done():
            with contextlib.suppress(RuntimeError):
                child.probe = asyncio.get_running_loop().create_task(self._recover(child, failure))
        return failure

    def _emit(self, child: _Child[P], available: bool, reason: str) -> None:
        event = AvailabilityChanged(self.stage, child.provider.descriptor, available, reason)
        self.on_availability.emit(event)

    async def _recover(self, child: _Child[P], failure: ProviderFailure) -> None:
        opts = self.fallback_options
        if failure.category is ErrorCategory.PERMANENT:
            delay = opts.permanent_probe_s
        else:
            delay = max(opts.probe_initial_s, failure.retry_after or 0.0)
        while not child.available:
            await asyncio.sleep(delay)
            if child.is_cloud and not self.connectivity.online:
                continue
            try:
                async with asyncio.timeout(opts.deadline_s * 2):
                    await self._probe(child.provider)
            except Exception as exc:
                child.category = category_of_exception(exc)
                delay = min(delay * 2, opts.probe_max_s if not child.category.is_permanent else opts.permanent_probe_s)
                continue
            child.available, child.category = True, None
            log.warning("%s %s recovered", self.stage, child.provider.descriptor)
            self._emit(child, True, "recovered")

    async def _probe(self, provider: P) -> None:
        raise NotImplementedError

    def _succeeded(self, child: _Child[P]) -> None:
        self.descriptor = child.provider.descriptor
        if not child.available:
            child.available, child.category = True, None
            self._emit(child, True, "recovered")

    def _all_failed(self, failures: list[ProviderFailure]) -> ProviderFailure:
        if not failures:
            return ProviderFailure(self.stage, ErrorCategory.OFFLINE, "no provider is usable (offline?)")
        last = failures[-1]
        summary = "; ".join(str(f) for f in failures)
        return ProviderFailure(self.stage, last.category, f"every provider failed: {summary}")

    async def warm_up(self) -> None:
        for child in self._children:
            if not child.is_cloud:
                await child.provider.warm_up()

    async def _stream(
        self,
        open_stream: Callable[[P], AsyncIterator[T]],
        usable: Callable[[P], bool] = lambda _p: True,
    ) -> AsyncIterator[T]:
        """Items from the first (`usable`) child that produces one in time; never switches after that.

        With hedging on, a child that is late (against its own recent first outputs) is raced by the
        next one, and whichever gives its first item first is the one heard; the other is stopped.
        """
        opts = self.fallback_options
        deadline = opts.deadline_s
        failures: list[ProviderFailure] = []
        queue = [c for c in self._order() if usable(c.provider)]
        while queue:
            child = queue.pop(0)
            partner = queue[0] if queue and opts.hedge_after_s and (child.is_cloud or queue[0].is_cloud) else None
            hedge_after = hedge_delay(child.first_output_s, opts.hedge_after_s or 0) if partner else None
            outcome = await race(
                open_stream(child.provider),
                deadline,
                hedge_after,
                (lambda p=partner: open_stream(p.provider)) if partner is not None else None,  # type: ignore[misc]
            )
            entrants = [child] if outcome.hedged_after_s is None else [child, queue.pop(0)]
            for index, error in outcome.errors.items():
                failures.append(self._failed(entrants[index], self._timeout_or(entrants[index], error, deadline)))
            if outcome.winner is None or outcome.stream is None:
                continue
            winner = entrants[outcome.winner]
            winner.first_output_s.append(outcome.first_after_s)
            self._succeeded(winner)
            if outcome.hedged_after_s is not None:
                self._raced(child, winner, outcome.hedged_after_s)
            items = outcome.stream
            try:
                if outcome.first is None:
                    return
                yield outcome.first
                async for item in items:
                    yield item
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(winner, exc)
                return  # already out: end here rather than say it twice
            finally:
                with contextlib.suppress(Exception):
                    await items.aclose()  # type: ignore[attr-defined]
        raise self._all_failed(failures)

    def _timeout_or(self, child: _Child[P], error: BaseException, deadline_s: float) -> BaseException:
        if isinstance(error, TimeoutError):
            return ProviderFailure(
                child.provider.descriptor, ErrorCategory.TIMEOUT, f"timeout: nothing within {deadline_s:g} s"
            )
        return error

    def _raced(self, late: _Child[P], winner: _Child[P], after_s: float) -> None:
        event = RaceWon(self.stage, late.provider.descriptor, winner.provider.descriptor, after_s)
        log.info("%s %s was late (%.2f s): raced, %s answered first", self.stage, event.late, after_s, event.winner)
        self.on_availability.emit(event)

    async def _answer(self, fn: Callable[[P], Awaitable[T]], deadline_s: float) -> T:
        """The result of the first child that answers within the deadline."""
        failures: list[ProviderFailure] = []
        for child in self._order():
            try:
                async with asyncio.timeout(deadline_s):
                    result = await fn(child.provider)
            except TimeoutError:
                timeout = ProviderFailure(
                    child.provider.descriptor, ErrorCategory.TIMEOUT, f"timeout: no answer within {deadline_s:g} s"
                )
                failures.append(self._failed(child, timeout))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.append(self._failed(child, exc))
                continue
            self._succeeded(child)
            return result
        raise self._all_failed(failures)

    async def aclose(self) -> None:
        for child in self._children:
            if child.probe is not None:
                child.probe.cancel()
            await child.provider.aclose()
        await self.connectivity.aclose()


class FallbackLLM(_Fallback[LLM], LLM):
    stage = "llm"

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        async for piece in self._stream(lambda llm: llm.stream(messages, options)):
            yield piece

    async def stream_with_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        options: LLMOptions,
        tool_choice: ToolChoiceMode = "auto",
        route: Router | None = None,
    ) -> AsyncIterator[str | ToolCall]:
        """A tool step from the first child that answers: natively, or chosen by `route` for a child that
        cannot (a local model); raced and fallen back like any stream, so a call cut half-way never runs."""
        stream = self._stream(
            lambda llm: llm.stream_with_tools(messages, tools, options, tool_choice, route),
            usable=lambda llm: llm.native_tools or route is not None,
        )
        async for item in stream:
            yield item

    async def choose(self, messages: Sequence[ChatMessage], options: Sequence[str]) -> str:
        return await self._answer(lambda llm: llm.choose(messages, options), self.fallback_options.deadline_s * 2)

    async def complete_json(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        return await self._answer(lambda llm: llm.complete_json(messages, schema), self.fallback_options.deadline_s * 2)

    def yield_cpu(self) -> None:
        for provider in self.children:
            provider.yield_cpu()

    def resume_cpu(self) -> None:
        for provider in self.children:
            provider.resume_cpu()

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        for child in self._children:
            if not child.is_cloud and child.available:
                child.provider.prefill(messages)

    async def _probe(self, provider: LLM) -> None:
        async for _ in provider.stream([ChatMessage("user", "Hi")], LLMOptions(max_tokens=1)):
            break


class FallbackSTT(_Fallback[STT], STT):
    stage = "stt"

    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        return await self._answer(lambda stt: stt.transcribe(audio, language, prompt), self.fallback_options.deadline_s)

    async def timed_words(
        self, audio: Int16Array, language: str | None = None, prompt: str | None = None
    ) -> list[TimedWord] | None:
        """From the first available engine that gives word times; one that fails is skipped here (word times
        are a nicety: the failure is the transcription path's to report)."""
        for child in self._children:
            if not child.available:
                continue
            try:
                words = await child.provider.timed_words(audio, language, prompt)
            except Exception as exc:
                log.debug("stt: no word times from %s: %s", child.provider.descriptor, exc)
                continue
            if words is not None:
                return words
        return None

    async def _probe(self, provider: STT) -> None:
        await provider.transcribe(np.zeros(3200, dtype=np.int16))


class FallbackTTS(_Fallback[TTS], TTS):
    """Switches only between sentences: a sentence whose audio started is never restarted."""

    stage = "tts"

    @property
    def sample_rate(self) -> int:  # type: ignore[override]
        return self.children[0].sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        async for chunk in self._stream(lambda tts: tts.synthesize(text)):
            yield chunk

    async def _probe(self, provider: TTS) -> None:
        async for _ in provider.synthesize("Ok."):
            break
