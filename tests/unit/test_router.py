"""Routing an utterance to a tool: templates, lexical match, constrained choice and arguments."""

from __future__ import annotations

import asyncio
from typing import Literal

from appliance import Agent, function_tool
from appliance.agents.router import (
    ToolRouter,
    coerce_arguments,
    expand_template,
    match_templates,
    spotted_arguments,
)
from appliance.agents.spoken import normalize
from tests.fakes import FakeLLM


class House(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="House.")

    @function_tool(templates=["set (a|an) timer for {minutes} minute[s]", "(a|an) {minutes} minute timer"])
    def set_timer(self, minutes: int, label: str = "timer") -> str:
        """Start a countdown timer."""
        return "ok"

    @function_tool
    def set_light(self, room: Literal["kitchen", "bedroom"], on: bool) -> str:
        """Switch the lights in a room on or off."""
        return "ok"

    @function_tool
    def get_weather(self) -> str:
        """Tell the weather forecast."""
        return "sunny"


def tools() -> dict[str, object]:
    return {t.name: t for t in House().tools}


def route(text: str, llm: FakeLLM | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(ToolRouter().route(text, House().tools, llm or FakeLLM()))


def test_numbers_are_normalized_to_digits() -> None:
    assert normalize("Set a timer for twenty-five minutes, please!") == "set a timer for 25 minutes please"
    assert normalize("a hundred and five") == "105"
    assert normalize("I have a dog") == "i have a dog"


def test_templates_expand_optional_parts_and_alternatives() -> None:
    assert expand_template("set (a|an) timer for {m} minute[s]") == [
        "set a timer for {m} minute",
        "set a timer for {m} minutes",
        "set an timer for {m} minute",
        "set an timer for {m} minutes",
    ]


def test_a_template_match_gives_typed_arguments() -> None:
    timer = next(t for t in House().tools if t.name == "set_timer")
    assert match_templates(timer, normalize("Could you set a timer for ten minutes please?")) == {"minutes": 10}
    assert match_templates(timer, normalize("a 5 minute timer")) == {"minutes": 5}
    assert match_templates(timer, normalize("set a timer for many minutes")) is None  # not an integer


def test_the_template_route_needs_no_llm() -> None:
    llm = FakeLLM()
    choice = route("set a timer for three minutes", llm)
    assert choice is not None and choice.tool.name == "set_timer" and choice.routed_by == "template"
    assert choice.arguments == {"minutes": 3}
    assert llm.choose_calls == [] and llm.requests == []


def test_small_talk_reaches_no_tool() -> None:
    assert route("what is the capital of france") is None


def test_a_clear_lexical_match_fills_arguments_from_the_words_and_the_llm() -> None:
    llm = FakeLLM()
    choice = route("please switch the bedroom lights off", llm)
    assert choice is not None and choice.tool.name == "set_light" and choice.routed_by == "lexical"
    assert choice.arguments == {"room": "bedroom", "on": False}  # spotted in the words: no JSON needed


def test_a_weak_lexical_match_is_confirmed_by_the_llm_which_may_say_none() -> None:
    llm = FakeLLM()
    llm.choices = ["none"]
    assert route("set the mood", llm) is None  # "set" names two tools: not enough to act on
    assert sorted(llm.choose_calls[0]) == ["none", "set_light", "set_timer"]


def test_one_distinctive_word_is_enough_and_docstring_words_are_not() -> None:
    llm = FakeLLM()
    choice = route("how is the weather in my heart", llm)
    assert choice is not None and choice.tool.name == "get_weather" and llm.choose_calls == []
    assert route("what a lovely forecast") is None  # "forecast" is only in the docstring


def test_arguments_the_words_do_not_settle_come_from_constrained_json() -> None:
    llm = FakeLLM()
    llm.json_replies = [{"room": "kitchen"}]
    choice = route("turn the lights on in the cooking room", llm)
    assert choice is not None and choice.arguments == {"room": "kitchen", "on": True}


def test_spotted_arguments_only_take_unambiguous_words() -> None:
    properties = {"room": {"enum": ["kitchen", "bedroom"]}, "on": {"type": "boolean"}}
    assert spotted_arguments("kitchen light on", properties) == {"room": "kitchen", "on": True}
    assert spotted_arguments("kitchen or bedroom", properties) == {}
    assert spotted_arguments("turn on do not turn off", properties) == {}


def test_coercion_fits_types_and_rejects_what_does_not_fit() -> None:
    light = next(t for t in House().tools if t.name == "set_light")
    assert coerce_arguments(light, {"room": "Kitchen", "on": "yes", "extra": 1}) == {"room": "kitchen", "on": True}
    try:
        coerce_arguments(light, {"room": "garage", "on": True})
    except ValueError as exc:
        assert "room must be one of" in str(exc)
    else:
        raise AssertionError("an unknown room was accepted")
