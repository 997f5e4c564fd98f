"""The kitchen agent, tested the way an agent developer tests one: text turns on the real local model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kitchen_agent import Kitchen, Recipes
from kitchen_agent.shopping_list import ShoppingList
from kitchen_agent.units import UnitError, convert, say_amount

from appliance import AgentSession

MODELS = Path(__file__).resolve().parents[3] / ".models"
"""The appliance checkout's model store (scripts/setup fills it)."""


@pytest.fixture
def list_file(tmp_path: Path) -> Path:
    return tmp_path / "kitchen" / "shopping-list.json"


async def test_the_shopping_list_is_kept_in_a_file_across_turns(list_file: Path) -> None:
    async with AgentSession(llm="local/smollm2-135m", models_dir=MODELS) as session:
        await session.start(Kitchen(list_file))
        added = await session.run(user_input="Add oat milk to the shopping list.")
        added.expect.next_event().is_function_call(name="add_to_list", arguments={"item": "oat milk"})
        added.expect.next_event().is_function_call_output(output="Added oat milk to the shopping list.")
        await session.run(user_input="We are out of eggs.")
        again = await session.run(user_input="Put eggs on my list.")
        again.expect.contains_function_call("add_to_list", {"item": "eggs"})
        assert "already on the list" in again.text
        read = await session.run(user_input="What's on my shopping list?")
        read.expect.next_event().is_function_call(name="read_list")
        assert read.text == "On the list: oat milk and eggs."
    assert json.loads(list_file.read_text()) == {"items": ["oat milk", "eggs"]}


async def test_cooking_units_convert_from_what_was_said(list_file: Path) -> None:
    async with AgentSession(llm="local/smollm2-135m", models_dir=MODELS) as session:
        await session.start(Kitchen(list_file))
        grams = await session.run(user_input="How many grams are in four ounces?")
        grams.expect.next_event().is_function_call(
            name="convert_units", arguments={"amount": 4, "from_unit": "ounces", "to_unit": "grams"}
        )
        assert grams.text == "4 ounces is about 113 grams."
        oven = await session.run(user_input="What is 350 fahrenheit in celsius?")
        assert oven.text == "350 degrees fahrenheit is about 177 degrees celsius."
        nonsense = await session.run(user_input="Convert 2 cups to pounds.")
        nonsense.expect.next_event().is_function_call(name="convert_units")
        nonsense.expect.next_event().is_function_call_output(output="do not convert", is_error=True)


async def test_the_recipe_helper_takes_over_and_hands_back_the_same_list(list_file: Path) -> None:
    kitchen = Kitchen(list_file)
    async with AgentSession(llm="local/smollm2-135m", models_dir=MODELS) as session:
        await session.start(kitchen)
        await session.run(user_input="Add rice to the shopping list.")
        over = await session.run(user_input="I need a recipe idea.")
        over.expect.contains_function_call("talk_to_recipes")
        assert isinstance(session.agent, Recipes) and "recipe helper" in over.text
        back = await session.run(user_input="Back to the kitchen.")
        back.expect.contains_function_call("back_to_kitchen")
        assert session.agent is kitchen
        read = await session.run(user_input="What is on the list?")
        assert read.text == "On the list: rice."


def test_the_list_ignores_case_and_articles_and_survives_a_new_instance(list_file: Path) -> None:
    shopping = ShoppingList(list_file)
    assert shopping.add("Bread") and not shopping.add("some bread") and shopping.add("a lemon")
    assert ShoppingList(list_file).items() == ["Bread", "a lemon"]
    assert shopping.remove("lemon") and not shopping.remove("a lemon") and shopping.items() == ["Bread"]


@pytest.mark.parametrize(
    ("amount", "source", "target", "said"),
    [
        (1, "cup", "millilitres", "237 millilitres"),
        (3, "tablespoons", "teaspoons", "9 teaspoons"),
        (1, "pound", "grams", "454 grams"),
        (100, "celsius", "fahrenheit", "212 degrees fahrenheit"),
        (2, "litres", "cups", "8.5 cups"),
    ],
)
def test_conversions(amount: float, source: str, target: str, said: str) -> None:
    assert say_amount(convert(amount, source, target), target) == said


def test_units_that_do_not_convert_are_a_clear_error() -> None:
    with pytest.raises(UnitError, match="do not convert"):
        convert(1, "cup", "grams")
    with pytest.raises(UnitError, match="don't know the unit furlongs"):
        convert(1, "furlongs", "grams")
