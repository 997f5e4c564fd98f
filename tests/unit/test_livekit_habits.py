"""The harness in LiveKit Agents' shapes: a handoff pair in either order, mock_tools on a class, indexing
and slicing events, contains_* anywhere, and skipping an event that may or may not come."""

from __future__ import annotations

import pytest

from appliance import Agent, function_tool, mock_tools
from appliance.agents.builtin.home import Chef
from tests.unit.test_agent_session import Kitchen, converse


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
