"""Assertions over a turn's events, for agent developers' tests (and the project's own).

    result.expect.next_event().is_function_call(name="set_timer", arguments={"minutes": 5})
    result.expect.next_event().is_function_call_output()
    await result.expect.next_event().is_message(role="assistant").judge(llm, intent="confirms the timer")
    result.expect.no_more_events()

A failed expectation raises AssertionError with every event of the turn listed and the one
that failed marked, so the reason is readable in CI output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.agents.agent import Agent
from appliance.agents.events import (
    AgentHandoffEvent,
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    RunEvent,
    describe,
)
from appliance.providers.base import LLM, ChatMessage


@dataclass
class RunResult:
    user_input: str
    events: list[RunEvent]
    text: str
    """The whole reply as it would be spoken."""
    expect: RunExpectations = field(init=False)

    def __post_init__(self) -> None:
        self.expect = RunExpectations(self)

    @property
    def function_calls(self) -> list[FunctionCallEvent]:
        return [e for e in self.events if isinstance(e, FunctionCallEvent)]


class RunExpectations:
    def __init__(self, result: RunResult) -> None:
        self._result = result
        self._cursor = 0

    def _fail(self, message: str, at: int | None = None) -> AssertionError:
        lines = [f"{message}", f"user said: {self._result.user_input!r}", "events:"]
        for index, event in enumerate(self._result.events):
            marker = ">" if index == at else " "
            lines.append(f"  {marker} [{index}] {describe(event)}")
        if not self._result.events:
            lines.append("    (none)")
        return AssertionError("\n".join(lines))

    def next_event(self) -> EventAssert:
        if self._cursor >= len(self._result.events):
            raise self._fail(f"expected an event at index {self._cursor}, but the turn had no more", None)
        index = self._cursor
        self._cursor += 1
        return EventAssert(self, self._result.events[index], index)

    def skip_next(self, count: int = 1) -> RunExpectations:
        self._cursor += count
        return self

    def no_more_events(self) -> None:
        if self._cursor < len(self._result.events):
            raise self._fail(f"expected no more events after index {self._cursor - 1}", self._cursor)

    def contains_function_call(self, name: str, arguments: Mapping[str, Any] | None = None) -> FunctionCallEvent:
        for index, event in enumerate(self._result.events):
            if (
                isinstance(event, FunctionCallEvent)
                and event.name == name
                and (arguments is None or _subset(arguments, event.arguments))
            ):
                self._cursor = max(self._cursor, index + 1)
                return event
        raise self._fail(f"expected a call to {name}({dict(arguments or {})}) somewhere in the turn")


class EventAssert:
    def __init__(self, expectations: RunExpectations, event: RunEvent, index: int) -> None:
        self._expectations = expectations
        self.event = event
        self.index = index

    def _fail(self, message: str) -> AssertionError:
        return self._expectations._fail(message, self.index)

    def is_function_call(self, name: str | None = None, arguments: Mapping[str, Any] | None = None) -> EventAssert:
        event = self.event
        if not isinstance(event, FunctionCallEvent):
            raise self._fail(f"expected a function call at index {self.index}")
        if name is not None and event.name != name:
            raise self._fail(f"expected a call to {name}, got {event.name}")
        if arguments is not None and not _subset(arguments, event.arguments):
            raise self._fail(f"expected {event.name} arguments to include {dict(arguments)}, got {event.arguments}")
        return self

    def is_function_call_output(self, output: str | None = None, is_error: bool | None = None) -> EventAssert:
        event = self.event
        if not isinstance(event, FunctionCallOutputEvent):
            raise self._fail(f"expected a function call output at index {self.index}")
        if is_error is not None and event.is_error != is_error:
            raise self._fail(f"expected is_error={is_error}, got {event.is_error}: {event.output!r}")
        if output is not None and output not in event.output:
            raise self._fail(f"expected the output to contain {output!r}, got {event.output!r}")
        return self

    def is_message(self, role: str | None = None, contains: str | None = None) -> MessageAssert:
        event = self.event
        if not isinstance(event, ChatMessageEvent):
            raise self._fail(f"expected a message at index {self.index}")
        if role is not None and event.role != role:
            raise self._fail(f"expected a {role} message, got {event.role}")
        if contains is not None and contains.lower() not in event.content.lower():
            raise self._fail(f"expected the message to contain {contains!r}")
        return MessageAssert(self._expectations, event, self.index)

    def is_agent_handoff(self, new_agent: str | type[Agent] | None = None) -> EventAssert:
        event = self.event
        if not isinstance(event, AgentHandoffEvent):
            raise self._fail(f"expected an agent handoff at index {self.index}")
        if isinstance(new_agent, type):
            wanted = Agent.__new__(new_agent).__class__.__name__
            from appliance.agents.agent import _default_name

            if event.new_agent not in (wanted, _default_name(new_agent)):
                raise self._fail(f"expected a handoff to {wanted}, got {event.new_agent}")
        elif new_agent is not None and event.new_agent != new_agent:
            raise self._fail(f"expected a handoff to {new_agent}, got {event.new_agent}")
        return self


class MessageAssert(EventAssert):
    event: ChatMessageEvent

    def __init__(self, expectations: RunExpectations, event: ChatMessageEvent, index: int) -> None:
        super().__init__(expectations, event, index)
        self.event = event

    async def judge(self, llm: LLM, *, intent: str) -> MessageAssert:
        """Ask a judge LLM (local or cloud) whether the message does what `intent` says."""
        verdict = await llm.choose(
            [
                ChatMessage(
                    "system",
                    "You check a voice assistant's reply. Answer yes if the reply does what the intent "
                    "describes, otherwise no.",
                ),
                ChatMessage("user", f"Intent: {intent}\nReply: {self.event.content}\nDoes the reply fit the intent?"),
            ],
            ["yes", "no"],
        )
        if verdict != "yes":
            raise self._fail(f"the judge found that the message does not fit the intent {intent!r}")
        return self


@contextlib.contextmanager
def mock_tools(agent: Agent, mocks: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Replace tool bodies for a test; routing and schemas stay as they are. Restored on exit."""
    unknown = set(mocks) - {t.name for t in agent.tools}
    if unknown:
        raise KeyError(f"{agent.name} has no tool named {', '.join(sorted(unknown))}")
    saved = {t.name: t.fn for t in agent.tools}
    for name, fn in mocks.items():
        agent.replace_tool(name, fn)
    try:
        yield
    finally:
        for name in mocks:
            agent.replace_tool(name, saved[name])


def _subset(wanted: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    return all(key in actual and actual[key] == value for key, value in wanted.items())
