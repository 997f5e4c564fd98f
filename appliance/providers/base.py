"""One interface per stage. Local and cloud providers implement the same ones.

Every method that computes is async: implementations run their engine in a
worker thread (see `workers.py`) so the event loop only moves frames and
decisions. Nothing here knows about transports, MQTT or LiveKit.
"""

from __future__ import annotations

import copy
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from appliance.audio.frames import AudioChunk, Int16Array
from appliance.config import LlmConfig
from appliance.emitter import Emitter

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A function the LLM asked for: an id (its output answers to it), a name, JSON arguments as text."""

    call_id: str
    name: str
    arguments: str
    routed_by: str = "native"
    """Who chose it: "native" (the LLM's own tool calling), or the router's "template", "lexical", "llm"."""


@dataclass(frozen=True)
class ToolSpec:
    """A function as an LLM's native tool calling is told about it (OpenAI's `tools`)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    """Role "assistant": the functions it called (its `content` may then be empty)."""
    tool_call_id: str = ""
    """Role "tool": the call this message is the output of."""


def plain_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Messages for an engine that has no tool turns (a local chat template): each tool call and its
    output become one system note in place, so the model still knows what was done and what came of it."""
    calls = {c.call_id: c for m in messages for c in m.tool_calls}
    plain: list[dict[str, str]] = []
    for message in messages:
        if message.role == "tool":
            call = calls.get(message.tool_call_id)
            done = f"{call.name} with {call.arguments}" if call else "a function"
            plain.append({"role": "system", "content": f"You called {done}; it returned: {message.content}"})
        elif message.content or not message.tool_calls:
            plain.append({"role": message.role, "content": message.content})
    return plain


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None = None
    seconds_of_audio: float = 0.0


_REPLY = LlmConfig()
"""The reply's defaults are the config's (`[llm] max_tokens`, `temperature`): written once, there."""


@dataclass(frozen=True)
class LLMOptions:
    """One request's generation settings (the router asks for a few tokens at temperature 0)."""

    max_tokens: int = _REPLY.max_tokens
    temperature: float = _REPLY.temperature
    repeat_penalty: float = 1.1
    """Discourages the loops small models fall into ("no, no, no, ...")."""
    stop: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class AvailabilityChanged:
    """A provider inside an adapter stopped or started answering (the fleet and the turn record show it)."""

    stage: str
    provider: str
    available: bool
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "provider": self.provider, "available": self.available, "reason": self.reason}


@dataclass(frozen=True)
class RaceWon:
    """A provider was late and the next one was started beside it (a hedge); `winner` spoke first."""

    stage: str
    late: str
    winner: str
    after_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "late": self.late,
            "winner": self.winner,
            "raced_after_ms": round(self.after_s * 1000),
        }


ProviderEvent = AvailabilityChanged | RaceWon
"""What an adapter tells the session about its children during a request."""


class Provider:
    """What every provider has: a descriptor it was made from, and a way to free its engine."""

    descriptor: str = ""
    is_cloud: bool = False
    """Reached over the network (the fallback skips it while offline; warm-up leaves it alone)."""

    @property
    def on_availability(self) -> Emitter[[ProviderEvent]]:
        """Children of an adapter going down or coming back, or raced when late; a single provider never emits."""
        emitter: Emitter[[ProviderEvent]] | None = self.__dict__.get("_on_availability")
        if emitter is None:
            emitter = self.__dict__["_on_availability"] = Emitter("availability")
        return emitter

    async def warm_up(self) -> None:
        """Run one tiny inference so the first real turn does not pay for lazy init."""

    async def aclose(self) -> None:
        """Release the engine and its worker thread."""


class VAD(Provider, ABC):
    """Streaming voice activity: one fixed-size 16 kHz frame in, speech probability out."""

    frame_samples: int = 512

    @abstractmethod
    async def probability(self, frame: Int16Array) -> float: ...

    @abstractmethod
    def reset(self) -> None:
        """Forget the recurrent state (a new stream begins)."""

    def fork(self) -> VAD:
        """A VAD for another stream: the same model, its own recurrent state (each conversation needs one)."""
        twin = copy.copy(self)
        twin.reset()
        return twin


@dataclass(frozen=True)
class TimedWord:
    """A word of a transcript and where it was said (seconds from the start of the audio)."""

    text: str
    start: float
    end: float


class STT(Provider, ABC):
    """Batch speech-to-text over one 16 kHz utterance."""

    @abstractmethod
    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        """`prompt`: words likely to be said (a wake phrase), to bias recognition toward them."""

    async def timed_words(
        self, audio: Int16Array, language: str | None = None, prompt: str | None = None
    ) -> list[TimedWord] | None:
        """The words with their times (to cut the wake phrase off a request sent elsewhere); None: this engine
        does not give word times. `prompt` as in `transcribe`: the words should be the ones the transcript had."""
        return None


Router = Callable[["LLM"], AsyncIterator["str | ToolCall"]]
"""Chooses tools for an LLM that cannot (a step of a tool turn, the same shape as a native one)."""

ToolChoiceMode = str
"""How the model may use the tools it is given: "auto" (its choice), "none" (words only), "required"
(some call), or the name of the one function it must call."""


class LLM(Provider, ABC):
    """Streaming chat completion: yields text pieces as the model produces them.

    Cancelling the consuming task (or closing the iterator) must stop the engine
    promptly; implementations check a cancel flag between tokens.
    """

    @property
    def native_tools(self) -> bool:
        """Takes tool definitions and answers with tool calls itself (a cloud API). Engines without it
        (a 135M local model) get their tools chosen by the router (`agents/router.py`) instead."""
        return False

    @abstractmethod
    def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]: ...

    def stream_with_tools(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        options: LLMOptions,
        tool_choice: ToolChoiceMode = "auto",
        route: Router | None = None,
    ) -> AsyncIterator[str | ToolCall]:
        """Text pieces as they come, then the tool calls the model made (each one whole, after the
        completion finished: a call cut half-way is never handed out). An LLM without `native_tools`
        has `route` choose for it (the agents' router), or cannot take tools at all."""
        if route is None:
            raise NotImplementedError(f"{self.descriptor} has no native tool calling")
        return route(self)

    async def choose(self, messages: Sequence[ChatMessage], options: Sequence[str]) -> str:
        """One of `options`. Local engines constrain decoding to them; this default asks and matches."""
        text = ""
        async for piece in self.stream(messages, LLMOptions(max_tokens=16, temperature=0.0)):
            text += piece
        said = text.lower()
        found = [(said.find(o.lower()), o) for o in options if o.lower() in said]
        return min(found)[1] if found else options[-1]

    async def complete_json(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        """A JSON object fitting `schema`. Local engines constrain decoding; this default parses the reply."""
        text = ""
        async for piece in self.stream(messages, LLMOptions(max_tokens=128, temperature=0.0)):
            text += piece
        match = re.search(r"\{.*\}", text, flags=re.S)
        try:
            value = json.loads(match.group(0)) if match else {}
        except json.JSONDecodeError:
            value = {}
        return value if isinstance(value, dict) else {}

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        """Read a prompt ahead of need, in the background (returns at once): the next request that starts
        with these messages only evaluates what comes after them. Engines without a prompt cache do nothing."""

    def yield_cpu(self) -> None:
        """Hint for the running generation: something more urgent needs the cores now.

        The reply calls this once its first piece has gone to TTS: from then on the
        LLM only has to stay ahead of speech, while TTS's first audio is on the critical
        path. A local engine pauses between tokens until `resume_cpu` (or a short ceiling).
        """

    def resume_cpu(self) -> None:
        """The urgent work `yield_cpu` made room for is done: generate at full speed again."""


class TTS(Provider, ABC):
    """Text to audio at the voice's own sample rate, streamed in chunks."""

    sample_rate: int = 22_050

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]: ...
