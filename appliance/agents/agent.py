"""Agents: who the appliance is in a conversation: instructions, tools, hooks, optional providers.

Subclass `Agent` and decorate methods with `@function_tool`, or pass plain functions as
`tools=`. Agents are registered by name (see `registry.py`) so config and commands can pick one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from appliance.agents.tools import FunctionTool, build_tool, is_tool

if TYPE_CHECKING:
    from appliance.agents.chat_context import ChatContext, UserMessage
    from appliance.agents.context import RunningSession
    from appliance.agents.runtime import AgentRuntime
    from appliance.providers.base import LLM, TTS


class Agent:
    def __init__(
        self,
        instructions: str,
        *,
        tools: Sequence[Callable[..., Any]] = (),
        name: str | None = None,
        llm: LLM | None = None,
        tts: TTS | None = None,
    ) -> None:
        self.instructions = instructions
        self.name = name or _default_name(type(self))
        self.llm = llm
        """A different LLM for this agent (None: the session's)."""
        self.tts = tts
        """A different voice for this agent (None: the session's)."""
        self.runtime: AgentRuntime | None = None
        # Looked up on the class, so properties (`session`) are not evaluated on a half-built agent.
        members = inspect.getmembers(type(self), inspect.isfunction)
        methods: list[Callable[..., Any]] = [getattr(self, name) for name, member in members if is_tool(member)]
        self._tools = [build_tool(fn) for fn in [*methods, *tools]]

    @property
    def tools(self) -> list[FunctionTool]:
        return list(self._tools)

    def replace_tool(self, name: str, fn: Callable[..., Any]) -> None:
        """Swap a tool's body, keeping its schema and routing (used by `mock_tools`)."""
        self._tools = [_with_fn(t, fn) if t.name == name else t for t in self._tools]

    async def on_enter(self) -> None:
        """Called when this agent becomes active (at start, or after a handoff)."""

    async def on_exit(self) -> None:
        """Called when another agent takes over."""

    async def on_user_turn_completed(self, chat_ctx: ChatContext, new_message: UserMessage) -> None:
        """Called with what the user said before anything answers it: change `new_message.content`
        (add context, correct a word), or raise `StopResponse` to leave the turn unanswered."""

    @property
    def session(self) -> RunningSession[Any]:
        """The conversation this agent runs in: `say`, `generate_reply`, `interrupt`, `userdata`."""
        if self.runtime is None:
            raise RuntimeError(f"{self.name} is not running in a session yet (it gets one when started)")
        from appliance.agents.context import RunningSession

        return RunningSession(self.runtime)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _with_fn(tool: FunctionTool, fn: Callable[..., Any]) -> FunctionTool:
    from dataclasses import replace

    return replace(tool, fn=fn)


def _default_name(cls: type) -> str:
    if cls is Agent:
        return "agent"
    name = cls.__name__
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


_CLASS_MOCKS: list[tuple[type[Agent], Mapping[str, Callable[..., Any]]]] = []
"""Tool bodies replaced for every agent of a class (`mock_tools(AgentClass, {...})`), newest last."""


def mocked_tool(agent: Agent, tool_name: str) -> Callable[..., Any] | None:
    """The test's stand-in for this agent's tool, if a `mock_tools` on its class is in force."""
    for mocked_class, mocks in reversed(_CLASS_MOCKS):
        stand_in: Callable[..., Any] | None = mocks.get(tool_name)
        if stand_in is not None and isinstance(agent, mocked_class):
            return stand_in
    return None
