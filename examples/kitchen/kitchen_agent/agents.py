"""The kitchen agent and the recipe helper it hands over to.

Templates make the tools reliable on the small local model (SmolLM2-135M); a bigger LLM would pick them
from the docstrings alone. A tool whose result reads as a sentence is spoken as it is.
"""

from __future__ import annotations

from pathlib import Path

from appliance import Agent, ToolError, function_tool
from kitchen_agent.shopping_list import ShoppingList, default_list_file
from kitchen_agent.units import UnitError, convert, say_amount

KITCHEN_INSTRUCTIONS = (
    "You are a helpful kitchen assistant. You keep the shopping list and convert cooking units. "
    "Always answer in one short spoken sentence."
)
RECIPES_INSTRUCTIONS = (
    "You are a recipe helper. Suggest simple recipes and cooking steps in one or two short spoken sentences."
)


class Kitchen(Agent):
    def __init__(self, list_file: Path | None = None) -> None:
        super().__init__(instructions=KITCHEN_INSTRUCTIONS, name="kitchen")
        self.shopping = ShoppingList(list_file or default_list_file())

    @function_tool(
        templates=[
            "[please] (add|put) {item} (to|on) [the|my] [shopping] list",
            "we need [some] [more] {item}",
            "we are out of {item}",
            "we're out of {item}",
        ],
        keywords=["add", "shopping", "list", "buy"],
        say_result=True,
    )
    async def add_to_list(self, item: str) -> str:
        """Put something on the shopping list.

        Args:
            item: what to buy, like milk or eggs
        """
        item = item.strip()
        if not item:
            raise ToolError("I didn't catch what to add")
        if not self.shopping.add(item):
            return f"{item.capitalize()} is already on the list."
        return f"Added {item} to the shopping list."

    @function_tool(
        templates=[
            "[please] (remove|delete|take|cross) {item} (from|off) [the|my] [shopping] list",
            "we (have|got) {item} now",
        ],
        keywords=["remove", "delete", "shopping", "list"],
        say_result=True,
    )
    async def remove_from_list(self, item: str) -> str:
        """Take something off the shopping list.

        Args:
            item: what to take off the list
        """
        if not self.shopping.remove(item):
            return f"{item.capitalize()} is not on the list."
        return f"Removed {item} from the shopping list."

    @function_tool(
        templates=[
            "what is on [the|my] [shopping] list",
            "what's on [the|my] [shopping] list",
            "read [me] [the|my] [shopping] list",
            "what do (i|we) need to buy",
        ],
        keywords=["list", "shopping", "buy", "read"],
        say_result=True,
    )
    async def read_list(self) -> str:
        """Say what is on the shopping list."""
        items = self.shopping.items()
        if not items:
            return "The shopping list is empty."
        listed = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
        return f"On the list: {listed}."

    @function_tool(
        templates=[
            "how many {to_unit} (are|is) [there] in {amount} {from_unit}",
            "how many {to_unit} in {amount} {from_unit}",
            "convert {amount} {from_unit} (to|into) {to_unit}",
            "what is {amount} {from_unit} in {to_unit}",
            "what's {amount} {from_unit} in {to_unit}",
        ],
        keywords=["convert", "how many", "cups", "grams", "ounces", "celsius", "fahrenheit"],
        say_result=True,
    )
    async def convert_units(self, amount: float, from_unit: str, to_unit: str) -> str:
        """Convert a cooking amount between units: cups, tablespoons, teaspoons, millilitres, litres,
        grams, kilograms, ounces, pounds, and oven temperatures in celsius and fahrenheit.

        Args:
            amount: how much, a number
            from_unit: the unit the amount is in
            to_unit: the unit wanted
        """
        try:
            value = convert(amount, from_unit, to_unit)
        except UnitError as exc:
            raise ToolError(str(exc)) from None
        return f"{say_amount(amount, from_unit)} is about {say_amount(value, to_unit)}."

    @function_tool(
        templates=[
            "[can i] talk to the recipe (helper|expert)",
            "i (need|want) [a] recipe [idea|ideas|help]",
            "[give me] [some] recipe ideas",
            "what (can|should) i cook [tonight|today]",
        ],
        keywords=["recipe", "cook", "dinner"],
    )
    async def talk_to_recipes(self) -> tuple[Recipes, str]:
        """Hand the conversation over to the recipe helper for recipe ideas and cooking steps."""
        return Recipes(kitchen=self), "Here is the recipe helper."


class Recipes(Agent):
    def __init__(self, kitchen: Kitchen | None = None) -> None:
        super().__init__(instructions=RECIPES_INSTRUCTIONS, name="recipes")
        self.kitchen = kitchen

    @function_tool(
        templates=[
            "(go|take me|switch) back to the kitchen [assistant]",
            "back to the kitchen [assistant]",
            "thanks [recipe] helper",
            "that's all",
        ],
        keywords=["back", "kitchen"],
        say_result=True,
    )
    async def back_to_kitchen(self) -> tuple[Kitchen, str]:
        """Hand the conversation back to the kitchen assistant (the shopping list and conversions)."""
        return self.kitchen or Kitchen(), "Back to the kitchen."
