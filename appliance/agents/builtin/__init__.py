"""The built-in agents, registered by name: `assistant` (home: timers, time, volume, a chef to hand
over to) and `chat` (plain conversation)."""

from appliance.agents.agent import Agent
from appliance.agents.builtin.home import HomeAssistant
from appliance.agents.registry import register_agent

register_agent("assistant", HomeAssistant)
register_agent(
    "chat",
    lambda: Agent(instructions="You are a friendly conversation partner. Keep every answer short and spoken."),
)
