"""A kitchen helper for the appliance: a shopping list kept on the box, cooking unit conversions, and a
recipe helper to hand over to (and back)."""

from kitchen_agent.agents import Kitchen, Recipes

__all__ = ["Kitchen", "Recipes"]
