"""What an agent offers, for `appliance agents list` and `doctor`: its tools and who it can hand over to.

Handoff targets are read from the tools' return annotations (`-> Chef`, `-> tuple[Chef, str]`): a tool
that returns an agent hands the conversation over to it, and its annotation says which one.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from appliance.agents.agent import Agent
from appliance.agents.registry import agent_sources, create_agent, name_of


@dataclass(frozen=True)
class ToolSummary:
    name: str
    description: str
    """The first line of the tool's description."""


@dataclass(frozen=True)
class AgentDescription:
    name: str
    origin: str
    tools: list[ToolSummary] = field(default_factory=list)
    handoffs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "tools": [{"name": t.name, "description": t.description} for t in self.tools],
            "handoffs": self.handoffs,
        }


def describe_agent(name: str, origin: str) -> AgentDescription:
    """Loads the agent (UnknownAgentError if it cannot be) and says what it offers."""
    agent = create_agent(name)
    tools = [ToolSummary(t.name, t.description.strip().splitlines()[0] if t.description.strip() else "")
             for t in agent.tools]  # fmt: skip
    targets: list[str] = []
    for tool in agent.tools:
        for cls in _agent_classes(_return_hint(tool.fn)):
            target = name_of(cls) or cls.__name__
            if target not in targets:
                targets.append(target)
    return AgentDescription(name, origin, tools, targets)


def describe_all() -> list[AgentDescription | tuple[str, str, Exception]]:
    """Every agent that can be named; one that fails to load is (name, origin, the error)."""
    described: list[AgentDescription | tuple[str, str, Exception]] = []
    for source in agent_sources():
        try:
            described.append(describe_agent(source.name, source.origin))
        except Exception as exc:  # a broken plugin must not hide the others
            described.append((source.name, source.origin, exc))
    return described


def _return_hint(fn: Any) -> Any:
    try:
        return typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that does not resolve says nothing about handoffs
        return None


def _agent_classes(hint: Any) -> list[type[Agent]]:
    if isinstance(hint, type):
        return [hint] if issubclass(hint, Agent) and hint is not Agent else []
    return [cls for arg in typing.get_args(hint) for cls in _agent_classes(arg)]
