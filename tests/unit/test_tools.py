"""Function tools: the JSON schema comes from type hints and the docstring."""

from __future__ import annotations

import enum
from typing import Literal

import pytest

from appliance import Agent, RunContext, function_tool
from appliance.agents.tools import build_tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Kitchen(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Kitchen helper.")

    @function_tool
    async def set_timer(self, ctx: RunContext[None], minutes: int, label: str = "timer") -> str:
        """Start a countdown timer that rings when it ends.

        Args:
            minutes: how long it runs
            label: what it is for
        """
        return "ok"

    @function_tool(name="paint", templates=["paint it {color}"], keywords=["colour"], say_result=False)
    def paint_wall(self, color: Color, coats: Literal[1, 2] = 1, rooms: list[str] | None = None) -> str:
        """Paint the wall."""
        return "painted"

    def not_a_tool(self) -> None:
        """Plain methods are not tools."""


def test_methods_marked_as_tools_are_collected_with_their_schema() -> None:
    tools = {t.name: t for t in Kitchen().tools}
    assert set(tools) == {"set_timer", "paint"}
    timer = tools["set_timer"]
    assert timer.description == "Start a countdown timer that rings when it ends."
    assert timer.parameters == {
        "type": "object",
        "properties": {
            "minutes": {"type": "integer", "description": "how long it runs"},
            "label": {"type": "string", "description": "what it is for", "default": "timer"},
        },
        "required": ["minutes"],
    }
    assert timer.context_param == "ctx"


def test_enums_literals_optionals_and_lists_map_to_json_schema() -> None:
    paint = {t.name: t for t in Kitchen().tools}["paint"]
    properties = paint.parameters["properties"]
    assert properties["color"] == {"type": "string", "enum": ["red", "blue"]}
    assert properties["coats"] == {"type": "integer", "enum": [1, 2], "default": 1}
    assert properties["rooms"] == {"type": "array", "items": {"type": "string"}, "default": None}
    assert paint.templates == ("paint it {color}",)
    assert paint.keywords == ("colour",)
    assert paint.say_result is False


def test_plain_functions_can_be_passed_as_tools() -> None:
    @function_tool
    def lights(room: str, on: bool) -> str:
        """Switch the lights."""
        return f"{room} {on}"

    agent = Agent(instructions="x", tools=[lights])
    (tool,) = agent.tools
    assert tool.name == "lights" and tool.required == ["room", "on"]
    assert tool.parameters["properties"]["on"] == {"type": "boolean"}


def test_an_unsupported_parameter_type_is_a_clear_error() -> None:
    @function_tool
    def bad(when: complex) -> None:
        """Nope."""

    with pytest.raises(TypeError, match="not supported"):
        build_tool(bad)


def test_agent_names_default_from_the_class() -> None:
    assert Kitchen().name == "kitchen"
    assert Agent(instructions="x").name == "agent"
    assert Agent(instructions="x", name="butler").name == "butler"
