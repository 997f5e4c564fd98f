"""The harness in LiveKit Agents' shapes: a handoff pair in either order, mock_tools on a class, indexing
and slicing events, contains_* anywhere, and skipping an event that may or may not come."""

from __future__ import annotations

import pytest

from appliance import Agent, AgentSession, RunContext, StopResponse, function_tool, mock_tools
from appliance.agents.builtin.home import Chef
from appliance.agents.chat_context import ChatContext, UserMessage
from appliance.providers.base import ChatMessage
from tests.fakes import FakeLLM
from tests.unit.test_agent_session import Kitchen, converse
from tests.virtual_clock import run_virtual


class Weather(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You tell the weather.")

    @function_tool(templates=["what is the weather in {city}"])
    async def lookup_weather(self, city: str) -> str:
        """Look up the weather."""
        return f"It is raining in {city}."

    @function_tool(templates=["talk to the chef"])
    async def to_chef(self) -> tuple[Chef, str]:
        """Hand over to the chef (LiveKit's order: the agent first)."""
        return Chef(), "Here is the chef."


def test_a_tool_may_return_the_new_agent_first_as_livekit_tools_do() -> None:
    (result,), session = converse(Weather(), "talk to the chef")
    result.expect.contains_agent_handoff(new_agent="chef")
    assert session.agent.name == "chef" and "Here is the chef." in result.text


def test_mock_tools_on_a_class_reaches_the_agent_already_running_and_takes_fewer_arguments() -> None:
    agent = Weather()
    with mock_tools(Weather, {"lookup_weather": lambda: "Sunny all day."}):
        (mocked,), _ = converse(agent, "what is the weather in Paris")
    mocked.expect[1].is_function_call_output(output="Sunny all day.")
    (real,), _ = converse(agent, "what is the weather in Paris")  # restored after the block
    real.expect[1].is_function_call_output(output="raining in paris")
    with pytest.raises(KeyError, match="no tool named forecast"), mock_tools(Weather, {"forecast": lambda: ""}):
        pass


def test_events_index_slice_and_contain() -> None:
    (result,), _ = converse(Kitchen(), "set a timer for five minutes", userdata={})
    expect = result.expect
    assert len(expect) == 3
    expect[0].is_function_call(name="set_timer", arguments={"minutes": 5})
    expect[-1].is_message(role="assistant")
    expect[1:].contains_function_call_output(output="Timer set for 5 minutes.")
    expect.contains_message(role="assistant", contains="timer set")
    with pytest.raises(AssertionError, match="expected a call to set_timer"):
        expect[1:].contains_function_call("set_timer")  # the call is at index 0, outside the slice
    with pytest.raises(AssertionError, match="expected a handoff to chef somewhere in the turn"):
        expect.contains_agent_handoff(new_agent="chef")
    with pytest.raises(AssertionError, match="the turn had 3"):
        expect[5].is_message()


def test_skip_next_event_if_skips_a_filler_only_when_it_came() -> None:
    (slow,), _ = converse(Kitchen(), "fetch the eggs")
    assert slow.expect.skip_next_event_if(type="function_call", name="burn_toast") is None  # stays
    slow.expect.next_event().is_function_call(name="fetch_eggs")
    slow.expect.skip_next_event_if(type="message", role="assistant", contains="let me look")
    slow.expect.next_event().is_function_call_output(output="Six eggs are left.")


class Librarian(Agent):
    """Says something while its tool works, rewrites what it hears, and ignores what is not for it."""

    def __init__(self) -> None:
        super().__init__(instructions="You find books.")
        self.heard: list[str] = []

    async def on_user_turn_completed(self, chat_ctx: ChatContext, new_message: UserMessage) -> None:
        self.heard.append(new_message.content)
        if new_message.content.startswith("psst"):
            raise StopResponse
        new_message.content = new_message.content.replace("bok", "book")

    @function_tool(templates=["find the book {title}"])
    async def find_book(self, ctx: RunContext[None], title: str) -> str:
        """Find a book on the shelves."""
        await ctx.session.say("Let me check the shelves.")
        return f"{title.capitalize()} is on shelf three."

    @function_tool(templates=["check the returns"])
    async def check_returns(self, ctx: RunContext[None]) -> str:
        """Look through the returned books."""
        await ctx.say("Looking through the returns")
        await ctx.wait_for_playout()  # text mode: the line is out as soon as the reply took it
        self.heard.append("after playout")
        return "Nothing came back today."


def test_a_tool_speaks_through_its_session_before_its_result_and_hooks_see_the_turn_first() -> None:
    agent = Librarian()
    (found, ignored), session = converse(agent, "find the bok dune", "psst, not you")
    assert found.text == "Let me check the shelves. Dune is on shelf three."
    # "bok" would match no template: the tool was found in the words as the hook corrected them.
    found.expect.next_event().is_function_call(name="find_book", arguments={"title": "dune"})
    found.expect.next_event().is_message(role="assistant", contains="let me check the shelves")
    found.expect.next_event().is_function_call_output(output="Dune is on shelf three.")
    ignored.expect.no_more_events()  # StopResponse: heard, not answered
    assert ignored.text == "" and agent.heard == ["find the bok dune", "psst, not you"]
    assert session.agent.session.interrupt() is False  # text mode: nothing to interrupt


def test_wait_for_playout_in_text_mode_returns_once_the_line_is_in_the_reply() -> None:
    agent = Librarian()
    (result,), _ = converse(agent, "check the returns")
    # The line became a sentence of its own (a full stop added), before the result.
    assert result.text == "Looking through the returns. Nothing came back today."
    assert agent.heard[-1] == "after playout"


def test_generate_reply_speaks_with_extra_instructions_and_goes_into_the_history() -> None:
    async def main() -> tuple[str, list[str], list[ChatMessage]]:
        llm = FakeLLM("Welcome back to the library.")
        async with AgentSession(llm=llm) as session:
            agent = Librarian()
            await session.start(agent)
            said = await agent.session.generate_reply(instructions="Greet the user.")
            return said, session.announcements, llm.requests[-1]

    said, announced, request = run_virtual(main())
    assert said == "Welcome back to the library." and announced == [said]
    assert request[0].content == "You find books." and request[-1] == ChatMessage("system", "Greet the user.")


def test_an_agent_has_no_session_before_it_is_started() -> None:
    with pytest.raises(RuntimeError, match="not running in a session yet"):
        _ = Librarian().session
