"""Runs the active agent for one user turn: route to a tool, call it, hand off, and talk.

Used by both the voice session (the text it yields is spoken) and the text harness (the text
is collected). Every step is also a typed event (`events.py`) for tests, records and logs.
The chat context is committed by the caller once it knows what the user actually heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from appliance.agents.agent import Agent, mocked_tool
from appliance.agents.chat_context import ChatContext, UserMessage
from appliance.agents.context import RunContext
from appliance.agents.events import (
    AgentHandoffEvent,
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    RunEvent,
)
from appliance.agents.router import ArgumentError, ToolChoice, ToolRouter
from appliance.agents.tools import FunctionTool, ToolError
from appliance.emitter import Emitter
from appliance.providers.base import LLM, ChatMessage, LLMOptions

log = logging.getLogger(__name__)

Announcer = Callable[[str], Awaitable[None]]


class StopResponse(Exception):
    """Raised by `on_user_turn_completed` to let a turn go unanswered (it was not meant for the agent)."""


class AgentRuntime:
    def __init__(
        self,
        agent: Agent,
        llm: LLM,
        options: LLMOptions | None = None,
        *,
        userdata: Any = None,
        history_chars: int = 4000,
        router: ToolRouter | None = None,
    ) -> None:
        self.agent = agent
        self.llm = llm
        self.options = options or LLMOptions()
        self.userdata = userdata
        self.history_chars = history_chars
        self.router = router or ToolRouter()
        self.chat = ChatContext()
        self.on_event: Emitter[[RunEvent]] = Emitter("event")
        self.announcer: Announcer | None = None
        self.interrupter: Callable[[], bool] | None = None
        """Stops what the agent is saying (the voice session's); None in text mode."""
        self.uninterruptible = False
        """This turn's reply is heard whole: barge-in does not cut it (a tool asked, for this turn)."""
        self._tool_lines: asyncio.Queue[str] | None = None
        self.on_volume: Emitter[[int]] = Emitter("volume")
        """The voice session listens here to apply a volume a tool set (0-100)."""
        agent.runtime = self

    @property
    def active_llm(self) -> LLM:
        return self.agent.llm or self.llm

    async def start(self) -> None:
        await self.agent.on_enter()

    def emit(self, event: RunEvent) -> None:
        self.on_event.emit(event)

    async def announce(self, text: str) -> None:
        """Say something: while a tool runs, as part of the turn's reply (before the tool's result);
        otherwise on the agent's own initiative, once nothing else is going on (a timer rings)."""
        self.emit(ChatMessageEvent("assistant", text))
        if self._tool_lines is not None:
            self._tool_lines.put_nowait(text)
        elif self.announcer is not None:
            await self.announcer(text)

    # ----- one turn -------------------------------------------------------------------------------

    async def respond(
        self, user_text: str, before_side_effects: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[str]:
        """Yield the reply's text as it is produced; events are emitted along the way.

        `before_side_effects` is awaited before any tool runs: a reply computed ahead of the
        turn's end (held) must not set a timer the user then talks over.
        """
        agent = self.agent
        self.uninterruptible = False
        message = UserMessage(user_text)
        try:
            # The agent may look at (and change) what the user said before anything answers it.
            await agent.on_user_turn_completed(self.chat, message)
        except StopResponse:
            self.emit(ChatMessageEvent("user", message.content))
            return
        user_text = message.content
        self.emit(ChatMessageEvent("user", user_text))
        try:
            choice = await self.router.route(user_text, agent.tools, self.active_llm)
        except ArgumentError as exc:
            log.info("no tool: %s", exc)
            choice = None
        if choice is None:
            async for piece in self._talk(user_text, None):
                yield piece
            return
        if before_side_effects is not None:
            await before_side_effects()
        result = _ToolResult()
        async for filler in self._call(choice, result):
            yield filler
        if result.handoff is not None:
            await self.handoff(result.handoff)
        if _speaks_for_itself(choice.tool, result):
            self.emit(ChatMessageEvent("assistant", result.output))
            yield result.output
            return
        async for piece in self._talk(user_text, (choice, result)):
            yield piece

    async def _talk(self, user_text: str, tool: tuple[ToolChoice, _ToolResult] | None) -> AsyncIterator[str]:
        messages = [
            *self.chat.for_llm(self.agent.instructions, self.history_chars),
            ChatMessage("user", user_text),
        ]
        if tool is not None:
            choice, result = tool
            outcome = "failed: " if result.is_error else "returned: "
            messages.append(
                ChatMessage(
                    "system",
                    f"The function {choice.tool.name} {outcome}{result.output} "
                    "Answer the user's last message in one short sentence using that result.",
                )
            )
        text = ""
        async for piece in self.active_llm.stream(messages, self.options):
            text += piece
            yield piece
        self.emit(ChatMessageEvent("assistant", text.strip()))

    async def _call(self, choice: ToolChoice, result: _ToolResult) -> AsyncIterator[str]:
        """Run the tool (with its timeout); yields a filler line if it is slow."""
        tool = choice.tool
        self.emit(FunctionCallEvent(tool.name, dict(choice.arguments), choice.routed_by))
        lines: asyncio.Queue[str] = asyncio.Queue()
        self._tool_lines = lines  # what the tool says meanwhile (`ctx.session.say`) goes into this reply
        task = asyncio.ensure_future(self._invoke(tool, choice.arguments))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + tool.timeout_s
            filler_at = loop.time() + tool.filler_after_s if tool.filler else None
            said = False
            while not task.done():
                wake = min(deadline, filler_at) if filler_at is not None else deadline
                if loop.time() >= deadline:
                    raise TimeoutError
                line = asyncio.ensure_future(lines.get())
                await asyncio.wait({task, line}, timeout=max(0.0, wake - loop.time()),
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if line.done():
                    said = True
                    yield f"{line.result()} "  # a sentence of its own: what follows is not glued to it
                else:
                    line.cancel()
                if filler_at is not None and loop.time() >= filler_at and not task.done():
                    filler_at = None
                    if not said:  # the tool spoke for itself: no filler on top
                        yield f"{tool.filler} "
            while not lines.empty():
                yield f"{lines.get_nowait()} "
            result.accept(task.result())
        except TimeoutError:
            result.fail(f"{tool.name} did not finish within {tool.timeout_s:g} s")
        except (ToolError, ArgumentError) as exc:
            result.fail(str(exc))
        except Exception as exc:
            log.exception("tool %s raised", tool.name)
            result.fail(f"{type(exc).__name__}: {exc}")
        finally:
            self._tool_lines = None
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self.emit(FunctionCallOutputEvent(tool.name, result.output, result.is_error))

    async def _invoke(self, tool: FunctionTool, arguments: dict[str, Any]) -> Any:
        kwargs = dict(arguments)
        if tool.context_param:
            kwargs[tool.context_param] = RunContext(self, self.agent, tool.name)
        mock = mocked_tool(self.agent, tool.name)
        value = _call_with_accepted(mock, kwargs) if mock is not None else tool.fn(**kwargs)
        return await value if inspect.isawaitable(value) else value

    async def handoff(self, new_agent: Agent) -> None:
        """Make `new_agent` the active agent; the chat context carries over. Also usable from outside."""
        old = self.agent
        if new_agent is old:
            return
        await old.on_exit()
        new_agent.runtime = self
        self.agent = new_agent
        self.emit(AgentHandoffEvent(old.name, new_agent.name))
        await new_agent.on_enter()

    def set_volume(self, level: int) -> None:
        self.on_volume.emit(level)

    def commit(self, user_text: str, heard_reply: str) -> None:
        """Add the exchange to the chat context (only what the user heard of the reply)."""
        self.chat.add("user", user_text)
        self.chat.add("assistant", heard_reply)


def _call_with_accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """A test's stand-in gets the arguments it names (`lambda: "sunny"` takes none, as in LiveKit)."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return fn(**kwargs)
    return fn(**{k: v for k, v in kwargs.items() if k in parameters})


class _ToolResult:
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


def _speaks_for_itself(tool: FunctionTool, result: _ToolResult) -> bool:
    if result.is_error or not result.output:
        return False
    if tool.say_result is not None:
        return tool.say_result
    text = result.output.strip()
    return len(text) <= 300 and text[-1] in ".!?" and text[0].isupper()
