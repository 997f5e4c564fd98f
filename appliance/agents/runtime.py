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
from appliance.agents.tool_result import ToolResult, TurnLog
from appliance.agents.tool_turn import tool_turn
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
        max_tool_steps: int = 3,
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
        self.max_tool_steps = max_tool_steps
        """Rounds of tool calls an LLM with native tool calling may make in one turn before it must answer."""
        self.turn = TurnLog()
        """The turn in progress: its tool calls and outputs, and what it has said so far."""
        self.playout: Callable[[], Awaitable[None]] | None = None
        """Waits until what the agent has said so far is heard (the voice session's); None in text mode."""
        self.on_volume: Emitter[[int]] = Emitter("volume")
        """The voice session listens here to apply a volume a tool set (0-100)."""
        agent.runtime = self

    @property
    def active_llm(self) -> LLM:
        return self.agent.llm or self.llm

    async def start(self) -> None:
        await self.agent.on_enter()
        self._prefill_next()

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
        self.turn = TurnLog()
        message = UserMessage(user_text)
        try:
            # The agent may look at (and change) what the user said before anything answers it.
            await agent.on_user_turn_completed(self.chat, message)
        except StopResponse:
            self.emit(ChatMessageEvent("user", message.content))
            return
        user_text = message.content
        self.emit(ChatMessageEvent("user", user_text))
        if agent.tools:
            async for piece in tool_turn(self, user_text, before_side_effects):
                yield piece
            return
        async for piece in self._talk(user_text):
            yield piece

    async def _talk(self, user_text: str) -> AsyncIterator[str]:
        """An agent without tools: the LLM answers."""
        messages = [*self.chat.for_llm(self.agent.instructions, self.history_chars), ChatMessage("user", user_text)]
        text = ""
        async for piece in self.active_llm.stream(messages, self.options):
            text += piece
            yield piece
        self.emit(ChatMessageEvent("assistant", text.strip()))

    async def call_tool(self, choice: ToolChoice, result: ToolResult) -> AsyncIterator[str]:
        """Run the tool (with its timeout); yields what it says meanwhile, and its filler if it is slow
        (once a turn: a second slow tool does not say it again)."""
        tool = choice.tool
        self.emit(FunctionCallEvent(tool.name, dict(choice.arguments), choice.routed_by))
        lines: asyncio.Queue[str] = asyncio.Queue()
        self._tool_lines = lines  # what the tool says meanwhile (`ctx.session.say`) goes into this reply
        task = asyncio.ensure_future(self._invoke(tool, choice.arguments))
        line: asyncio.Future[str] | None = None
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + tool.timeout_s
            filler = tool.filler if tool.filler and tool.filler not in self.turn.said else None
            filler_at = loop.time() + tool.filler_after_s if filler else None
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
                    yield self._said(line.result())
                    lines.task_done()  # heard by the reply now (`wait_for_playout` counts on it)
                else:
                    line.cancel()
                if filler is not None and filler_at is not None and loop.time() >= filler_at and not task.done():
                    filler_at = None
                    if not said:  # the tool spoke for itself: no filler on top
                        yield self._said(filler)
            while not lines.empty():
                yield self._said(lines.get_nowait())
                lines.task_done()
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
            if line is not None:
                line.cancel()  # the reply was cut while the tool worked: stop waiting for its words
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self.emit(FunctionCallOutputEvent(tool.name, result.output, result.is_error))

    def _said(self, line: str) -> str:
        """A line said during a tool, as a sentence of its own (what follows is not glued to it, and
        TTS takes it at once)."""
        line = line.strip()
        self.turn.said.append(line)
        return f"{line} " if line[-1:] in ".!?" else f"{line}. "

    async def wait_for_playout(self) -> None:
        """Until what was said so far in this turn has been heard (in text mode: handed out)."""
        lines = self._tool_lines
        if lines is not None:
            await lines.join()  # the tool's own lines are in the reply
        if self.playout is not None:
            await self.playout()

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
        """Add the exchange to the chat context: what the user said, the tools this turn ran and what
        they returned (the next turn knows what was done), and what the user heard of the reply."""
        self.chat.add("user", user_text)
        for message in self.turn.history:
            self.chat.messages.append(message)
        self.turn = TurnLog()
        self.chat.add("assistant", heard_reply)
        self._prefill_next()

    def _prefill_next(self) -> None:
        """Have a local LLM read the next turn's prompt (instructions and history) now, while the user
        listens or talks: the next turn then only evaluates the new words. Without this, a turn whose tool
        choice asked the LLM leaves the cache holding that prompt, and the next one reads the whole history
        again (`tests/integration/test_agents_real.py` holds the turn after a tool choice under 30 tokens)."""
        self.active_llm.prefill(self.chat.for_llm(self.agent.instructions, self.history_chars))


def _call_with_accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """A test's stand-in gets the arguments it names (`lambda: "sunny"` takes none, as in LiveKit)."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return fn(**kwargs)
    return fn(**{k: v for k, v in kwargs.items() if k in parameters})
