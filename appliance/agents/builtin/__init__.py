"""The built-in agents, registered by name: `assistant` (home: timers, time, volume, a chef to hand
over to), `chef` (registered too: every agent a conversation can be in is one the fleet can name, and
Home Assistant's agent select can show) and `chat` (plain conversation)."""

from appliance.agents.agent import Agent
from appliance.agents.builtin.home import Chef, HomeAssistant
from appliance.agents.registry import register_agent

register_agent("assistant", HomeAssistant, "built-in")
register_agent("chef", Chef, "built-in")
register_agent(
    "chat",
    lambda: Agent(instructions="You are a friendly conversation partner. Keep every answer short and spoken."),
    "built-in",
)
