"""The agent harness on scripted LLMs: events in order, tool errors, timeouts, fillers, handoffs.

These also test the harness itself: a failed expectation must say what happened.
"""

from __future__ import annotations

import asyncio

import pytest

from appliance import Agent, AgentSession, RunContext, ToolError, function_tool, mock_tools
from appliance.agents.builtin.home import Chef, HomeAssistant
from tests.fakes import FakeLLM
from tests.virtual_clock import run_virtual


class Kitchen(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You help in the kitchen.")
        self.entered = 0
        self.exited = 0

    async def on_enter(self) -> None:
        self.entered += 1

    async def on_exit(self) -> None:
        self.exited += 1

    @function_tool(templates=["set (a|an) timer for {minutes} minute[s]"])
    async def set_timer(self, ctx: RunContext[dict[str, int]], minutes: int) -> str:
        """Start a countdown timer."""
        ctx.userdata["timers"] = ctx.userdata.get("timers", 0) + 1
        return f"Timer set for {minutes} minutes."

    @function_tool(templates=["burn the toast"], say_result=False)
    async def burn_toast(self) -> str:
        """Burn the toast."""
        raise ToolError("the toaster is unplugged")

    @function_tool(templates=["bake the bread"], timeout_s=2.0, filler="One moment.", filler_after_s=0.5)
    async def bake_bread(self) -> str:
        """Bake bread (slowly)."""
        await asyncio.sleep(60)
        return "Bread is done."

    @function_tool(templates=["fetch the eggs"], filler="Let me look.", filler_after_s=0.5)
    async def fetch_eggs(self) -> str:
        """Fetch eggs (takes a moment)."""
        await asyncio.sleep(1.0)
        return "Six eggs are left."

    @function_tool(templates=["talk to the chef"])
    async def to_chef(self) -> Agent:
        """Hand over to the chef."""
        return Chef()


def converse(agent: Agent, *lines: str, llm: FakeLLM | None = None, userdata: object = None):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        async with AgentSession(llm=llm or FakeLLM("Sure thing."), userdata=userdata) as session:
            await session.start(agent)
            return [await session.run(user_input=line) for line in lines], session

    return run_virtual(main())


def test_a_tool_call_its_output_and_the_reply_come_as_events_in_order() -> None:
    userdata: dict[str, int] = {}
    (result,), _ = converse(Kitchen(), "set a timer for five minutes", userdata=userdata)
    result.expect.next_event().is_function_call(name="set_timer", arguments={"minutes": 5})
    result.expect.next_event().is_function_call_output(output="Timer set for 5 minutes.", is_error=False)
    result.expect.next_event().is_message(role="assistant", contains="timer set")
    result.expect.no_more_events()
    assert result.text == "Timer set for 5 minutes."
    assert userdata == {"timers": 1}


def test_without_a_tool_the_llm_answers() -> None:
    (result,), _ = converse(Kitchen(), "what is a good soup")
    result.expect.next_event().is_message(role="assistant", contains="sure thing")
    result.expect.no_more_events()


def test_a_tool_error_goes_to_the_llm_and_the_turn_goes_on() -> None:
    llm = FakeLLM("Sorry, the toaster is unplugged.")
    (result,), _ = converse(Kitchen(), "burn the toast", llm=llm)
    result.expect.next_event().is_function_call(name="burn_toast")
    result.expect.next_event().is_function_call_output(output="unplugged", is_error=True)
    result.expect.next_event().is_message(role="assistant")
    assert "failed: the toaster is unplugged" in llm.requests[-1][-1].content


def test_a_slow_tool_says_a_filler_first_and_then_its_result() -> None:
    (result,), _ = converse(Kitchen(), "fetch the eggs")
    assert result.text == "Let me look.Six eggs are left." or result.text.startswith("Let me look.")
    result.expect.next_event().is_function_call(name="fetch_eggs")
    result.expect.next_event().is_function_call_output(output="Six eggs are left.")


def test_a_tool_that_times_out_is_reported_as_an_error() -> None:
    (result,), _ = converse(Kitchen(), "bake the bread")
    result.expect.next_event().is_function_call(name="bake_bread")
    result.expect.next_event().is_function_call_output(output="did not finish within 2 s", is_error=True)


def test_a_tool_returning_an_agent_hands_over_with_the_chat_context() -> None:
    kitchen = Kitchen()
    llm = FakeLLM("Stir it slowly.")
    (first, second), session = converse(kitchen, "talk to the chef", "how do I make soup", llm=llm)
    first.expect.next_event().is_function_call(name="to_chef")
    first.expect.next_event().is_function_call_output()
    first.expect.next_event().is_agent_handoff(new_agent="chef")
    assert session.agent.name == "chef" and kitchen.exited == 1
    second.expect.next_event().is_message(role="assistant")
    chef_request = llm.requests[-1]
    assert chef_request[0].content.startswith("You are a friendly chef")
    # The history carried over, with the tool call and its output: the chef knows how it got here.
    assert [m.role for m in chef_request] == ["system", "user", "assistant", "tool", "assistant", "user"]
    call, output = chef_request[2], chef_request[3]
    assert [c.name for c in call.tool_calls] == ["to_chef"] and output.tool_call_id == call.tool_calls[0].call_id


def test_a_result_and_agent_pair_hands_over_and_says_the_result() -> None:
    (result,), session = converse(HomeAssistant(), "I want to talk to the chef")
    result.expect.contains_function_call("talk_to_chef")
    assert session.agent.name == "chef"
    assert "The chef is here." in result.text


def test_a_handoff_can_come_from_outside_the_conversation() -> None:
    async def main() -> list[str]:
        async with AgentSession(llm=FakeLLM()) as session:
            kitchen = Kitchen()
            await session.start(kitchen)
            await session.handoff(Chef())
            assert kitchen.exited == 1
            result = await session.run(user_input="hello")
            return [session.agent.name, result.text]

    assert run_virtual(main()) == ["chef", "It is noon. Have a nice day."]


def test_mock_tools_replace_bodies_and_restore_them() -> None:
    kitchen = Kitchen()

    async def fake_timer(ctx: RunContext[dict[str, int]], minutes: int) -> str:
        return f"mocked {minutes}"

    with mock_tools(kitchen, {"set_timer": fake_timer}):
        (result,), _ = converse(kitchen, "set a timer for 2 minutes", userdata={})
        result.expect.skip_next().next_event().is_function_call_output(output="mocked 2")
    (result,), _ = converse(kitchen, "set a timer for 2 minutes", userdata={})
    result.expect.skip_next().next_event().is_function_call_output(output="Timer set for 2 minutes.")
    with pytest.raises(KeyError, match="no tool named nope"):
        mock_tools(kitchen, {"nope": fake_timer}).__enter__()


def test_a_failed_expectation_lists_every_event_and_marks_the_one_that_failed() -> None:
    (result,), _ = converse(Kitchen(), "set a timer for five minutes", userdata={})
    with pytest.raises(AssertionError) as failure:
        result.expect.next_event().is_function_call(name="cancel_timer")
    message = str(failure.value)
    assert "expected a call to cancel_timer, got set_timer" in message
    assert "user said: 'set a timer for five minutes'" in message
    assert "> [0] function_call set_timer({'minutes': 5})" in message
    assert "  [1] function_call_output set_timer" in message
    with pytest.raises(AssertionError, match="no more events"):
        result.expect.no_more_events()


def test_the_judge_asks_the_llm_and_fails_with_the_intent() -> None:
    async def main() -> list[str]:
        async with AgentSession(llm=FakeLLM("The timer is set.")) as session:
            await session.start(Kitchen())
            result = await session.run(user_input="what now")
            judge = FakeLLM()
            judge.choices = ["yes", "no"]
            judge.json_replies = [{"reason": "It says the timer is set."}, {"reason": "There is no joke in it."}]
            message = result.expect.next_event().is_message(role="assistant")
            await message.judge(judge, intent="confirms a timer")
            assert message.verdict is not None and message.verdict.reason == "It says the timer is set."
            with pytest.raises(AssertionError, match="not fit the intent 'tells a joke': There is no joke in it"):
                await message.judge(judge, intent="tells a joke")
            return judge.choose_calls[0]

    assert run_virtual(main()) == ["yes", "no"]


def test_home_timers_ring_through_announcements_and_can_be_listed_and_cancelled() -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with AgentSession(llm=FakeLLM()) as session:
            await session.start(HomeAssistant())
            texts = []
            for line in ("set a timer for 2 minutes", "set a pasta timer for 5 minutes", "how much time is left"):
                texts.append((await session.run(user_input=line)).text)
            await asyncio.sleep(150)  # the 2-minute timer rings
            texts.append((await session.run(user_input="cancel the pasta timer")).text)
            texts.append((await session.run(user_input="which timers are running")).text)
            await asyncio.sleep(600)
            return texts, session.announcements

    texts, announcements = run_virtual(main())
    assert texts[0] == "Okay, your timer is set for 2 minutes."
    assert texts[1] == "Okay, your pasta timer is set for 5 minutes."
    assert "The timer has 2 minutes" in texts[2] and "The pasta timer has 5 minutes" in texts[2]
    assert texts[3] == "Timer cancelled."
    assert texts[4] == "No timers are running."
    assert announcements == ["Your timer is done."]  # the cancelled pasta timer never rang


def test_home_volume_time_and_date_tools() -> None:
    async def main() -> tuple[list[str], list[int]]:
        async with AgentSession(llm=FakeLLM()) as session:
            await session.start(HomeAssistant())
            levels: list[int] = []
            assert session.runtime is not None
            session.runtime.on_volume.connect(levels.append)
            texts = [
                (await session.run(user_input=line)).text
                for line in (
                    "set the volume to 40",
                    "turn it up",
                    "make it quieter",
                    "what time is it",
                    "what's the date",
                )
            ]
            return texts, levels

    texts, levels = run_virtual(main())
    assert texts[:3] == ["Volume set to 40.", "Volume up, now 55.", "Volume down, now 40."]
    assert texts[3].startswith("It is ") and texts[4].startswith("Today is ")
    assert levels == [40, 55, 40]


def test_a_timer_out_of_range_is_a_tool_error() -> None:
    (result,), _ = converse(HomeAssistant(), "set a timer for 5000 minutes")
    result.expect.next_event().is_function_call(name="set_timer", arguments={"minutes": 5000})
    result.expect.next_event().is_function_call_output(is_error=True, output="between 1 minute and 24 hours")
