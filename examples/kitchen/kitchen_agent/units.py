"""Cooking unit conversions: volume, weight and oven temperature, by the names people say."""

from __future__ import annotations

# Each unit: (kind, how many of the kind's base unit one of it is). Base units: millilitre, gram.
UNITS: dict[str, tuple[str, float]] = {
    "millilitre": ("volume", 1.0),
    "litre": ("volume", 1000.0),
    "teaspoon": ("volume", 4.92892),
    "tablespoon": ("volume", 14.7868),
    "cup": ("volume", 236.588),
    "fluid ounce": ("volume", 29.5735),
    "gram": ("weight", 1.0),
    "kilogram": ("weight", 1000.0),
    "ounce": ("weight", 28.3495),
    "pound": ("weight", 453.592),
}
ALIASES = {
    "ml": "millilitre", "milliliter": "millilitre", "liter": "litre", "l": "litre", "tsp": "teaspoon",
    "tbsp": "tablespoon", "oz": "ounce", "g": "gram", "kg": "kilogram", "lb": "pound", "lbs": "pound",
    "celsius": "celsius", "centigrade": "celsius", "fahrenheit": "fahrenheit", "degrees celsius": "celsius",
    "degrees fahrenheit": "fahrenheit",
}  # fmt: skip


class UnitError(ValueError):
    """A unit nobody here knows, or two that do not convert (cups to grams)."""


def unit_name(said: str) -> str:
    """'Cups' -> 'cup', 'tbsp' -> 'tablespoon'; UnitError if unknown."""
    word = " ".join(said.lower().replace(".", "").split())
    if word in ALIASES:
        return ALIASES[word]
    for candidate in (word, word.removesuffix("s"), word.removesuffix("es")):
        if candidate in UNITS or candidate in ("celsius", "fahrenheit"):
            return candidate
    raise UnitError(f"I don't know the unit {said}")


def convert(amount: float, from_unit: str, to_unit: str) -> float:
    source, target = unit_name(from_unit), unit_name(to_unit)
    if {source, target} <= {"celsius", "fahrenheit"}:
        if source == target:
            return amount
        return amount * 9 / 5 + 32 if source == "celsius" else (amount - 32) * 5 / 9
    if source not in UNITS or target not in UNITS or UNITS[source][0] != UNITS[target][0]:
        raise UnitError(f"{from_unit} and {to_unit} do not convert into each other")
    return amount * UNITS[source][1] / UNITS[target][1]


def say_amount(value: float, unit: str) -> str:
    """'2 cups', '1 cup', '0.5 teaspoons', rounded the way a cook would say it."""
    rounded = round(value) if value >= 10 else round(value, 1)
    text = f"{rounded:g}"
    name = unit_name(unit)
    if name in ("celsius", "fahrenheit"):
        return f"{text} degrees {name}"
    return f"{text} {name}" if text == "1" else f"{text} {name}s"
