"""appliance: an offline-first edge voice agent appliance.

The Python API for agent developers:

    from appliance import Agent, AgentSession, RunContext, function_tool
"""

from appliance.agents.agent import Agent
from appliance.agents.context import RunContext, RunningSession
from appliance.agents.registry import register_agent
from appliance.agents.runtime import StopResponse
from appliance.agents.session import AgentSession
from appliance.agents.testing import RunResult, mock_tools
from appliance.agents.tools import ToolError, function_tool

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentSession",
    "RunContext",
    "RunResult",
    "RunningSession",
    "StopResponse",
    "ToolError",
    "function_tool",
    "mock_tools",
    "register_agent",
]
