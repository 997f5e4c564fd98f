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
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from appliance.agents.agent import Agent
from appliance.agents.events import (
    AgentHandoffEvent,
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    RunEvent,
    describe,
)
from appliance.agents.tools import is_tool
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
    """The turn's events, in order: walk them (`next_event`, `skip_next_event_if`), index or slice them
    (`expect[0]`, `expect[-1]`, `expect[1:]`), or look anywhere in them (`contains_*`)."""

    def __init__(self, result: RunResult, window: range | None = None) -> None:
        self._result = result
        self._window = window if window is not None else range(len(result.events))
        """The indexes of the result's events this view covers (all of them, or a slice)."""
        self._cursor = 0

    def _fail(self, message: str, at: int | None = None) -> AssertionError:
        lines = [f"{message}", f"user said: {self._result.user_input!r}", "events:"]
        for index, event in enumerate(self._result.events):
            marker = ">" if index == at else " "
            lines.append(f"  {marker} [{index}] {describe(event)}")
        if not self._result.events:
            lines.append("    (none)")
        return AssertionError("\n".join(lines))

    def __len__(self) -> int:
        return len(self._window)

    @overload
    def __getitem__(self, key: int) -> EventAssert: ...

    @overload
    def __getitem__(self, key: slice) -> RunExpectations: ...

    def __getitem__(self, key: int | slice) -> EventAssert | RunExpectations:
        if isinstance(key, slice):
            return RunExpectations(self._result, self._window[key])
        try:
            index = self._window[key]
        except IndexError:
            raise self._fail(f"expected an event at index {key}, but the turn had {len(self)}") from None
        return EventAssert(self, self._result.events[index], index)

    def next_event(self) -> EventAssert:
        if self._cursor >= len(self._window):
            raise self._fail(f"expected an event at index {self._cursor}, but the turn had no more", None)
        index = self._window[self._cursor]
        self._cursor += 1
        return EventAssert(self, self._result.events[index], index)

    def skip_next(self, count: int = 1) -> RunExpectations:
        self._cursor += count
        return self

    def skip_next_event_if(self, type: EventKind, **expected: Any) -> EventAssert | None:
        """Skip the next event if it is of this type and matches (`role="assistant"`, `name=...`): for an
        event that may or may not come, such as a filler line. Returns it, or None if it stayed."""
        if self._cursor >= len(self._window):
            return None
        index = self._window[self._cursor]
        candidate = EventAssert(self, self._result.events[index], index)
        try:
            _check(candidate, type, expected)
        except AssertionError:
            return None
        self._cursor += 1
        return candidate

    def no_more_events(self) -> None:
        if self._cursor < len(self._window):
            raise self._fail(f"expected no more events after index {self._cursor - 1}", self._window[self._cursor])

    def _contains(self, type: EventKind, expected: Mapping[str, Any], what: str) -> EventAssert:
        for position, index in enumerate(self._window):
            candidate = EventAssert(self, self._result.events[index], index)
            try:
                _check(candidate, type, expected)
            except AssertionError:
                continue
            self._cursor = max(self._cursor, position + 1)
            return candidate
        raise self._fail(f"expected {what} somewhere in the turn")

    def contains_function_call(self, name: str, arguments: Mapping[str, Any] | None = None) -> FunctionCallEvent:
        found = self._contains("function_call", {"name": name, "arguments": arguments},
                               f"a call to {name}({dict(arguments or {})})")  # fmt: skip
        assert isinstance(found.event, FunctionCallEvent)
        return found.event

    def contains_function_call_output(self, output: str | None = None, is_error: bool | None = None) -> EventAssert:
        return self._contains("function_call_output", {"output": output, "is_error": is_error},
                              f"a function call output {output or ''!r}")  # fmt: skip

    def contains_message(self, role: str | None = None, contains: str | None = None) -> EventAssert:
        what = f"a {role or ''} message {contains or ''!r}"
        return self._contains("message", {"role": role, "contains": contains}, what)

    def contains_agent_handoff(self, new_agent: str | type[Agent] | None = None) -> EventAssert:
        return self._contains("agent_handoff", {"new_agent": new_agent}, f"a handoff to {new_agent}")


EventKind = Literal["message", "function_call", "function_call_output", "agent_handoff"]


def _check(candidate: EventAssert, kind: EventKind, expected: Mapping[str, Any]) -> None:
    checks: dict[str, Callable[..., Any]] = {
        "message": candidate.is_message,
        "function_call": candidate.is_function_call,
        "function_call_output": candidate.is_function_call_output,
        "agent_handoff": candidate.is_agent_handoff,
    }
    checks[kind](**expected)


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
        self.verdict: Verdict | None = None
        """The judge's decision and reason, once `judge` ran."""

    async def judge(self, llm: LLM, *, intent: str) -> MessageAssert:
        """Ask a judge LLM (local or cloud) whether the message does what `intent` says. The verdict and
        the judge's reason are kept (`self.verdict`); a "no" fails with the reason in the message."""
        reply = self.event.content
        prompt = [
            ChatMessage(
                "system",
                "You check a voice assistant's reply. Answer yes if the reply does what the intent "
                "describes, otherwise no.",
            ),
            ChatMessage("user", f"Intent: {intent}\nReply: {reply}\nDoes the reply fit the intent?"),
        ]
        fits = await llm.choose(prompt, ["yes", "no"]) == "yes"
        asked = f"The judge answered {'yes' if fits else 'no'}. In one short sentence, say why."
        explained = await llm.complete_json([*prompt, ChatMessage("user", asked)], REASON_SCHEMA)
        reason = str(explained.get("reason") or "").strip() or "(the judge gave no reason)"
        self.verdict = Verdict(fits, reason)
        if not fits:
            raise self._fail(f"the judge found that the message does not fit the intent {intent!r}: {reason}")
        return self


REASON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 200}},
    "required": ["reason"],
}


@dataclass(frozen=True)
class Verdict:
    """What a judge decided about a message, and why."""

    fits: bool
    reason: str


@contextlib.contextmanager
def mock_tools(agent: Agent | type[Agent], mocks: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Replace tool bodies for a test; routing and schemas stay as they are. Restored on exit.

    `agent` is an instance, or an Agent class as in LiveKit Agents: then every agent of that class the
    session runs (the one started before the block, one handed over to inside it) uses the mocks. A mock
    gets the tool's arguments it names (`lambda: "sunny"` takes none)."""
    if isinstance(agent, type):
        from appliance.agents.agent import _CLASS_MOCKS

        known = {name for name, member in inspect.getmembers(agent, inspect.isfunction) if is_tool(member)}
        unknown = set(mocks) - known
        if unknown:
            raise KeyError(f"{agent.__name__} has no tool named {', '.join(sorted(unknown))}")
        entry = (agent, dict(mocks))
        _CLASS_MOCKS.append(entry)
        try:
            yield
        finally:
            _CLASS_MOCKS.remove(entry)
        return
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
