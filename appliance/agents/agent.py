"""Agents: who the appliance is in a conversation. Registered by name so config can pick one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Agent:
    instructions: str
    name: str = "agent"


_REGISTRY: dict[str, Callable[[], Agent]] = {}


def register_agent(name: str, factory: Callable[[], Agent]) -> None:
    _REGISTRY[name] = factory


def create_agent(name: str) -> Agent:
    try:
        agent = _REGISTRY[name]()
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown agent {name!r} (known: {known})") from None
    agent.name = name
    return agent


def agent_names() -> list[str]:
    return sorted(_REGISTRY)


register_agent(
    "assistant",
    lambda: Agent(
        instructions=(
            # Measured on the ten bench questions with SmolLM2-135M: naming the language and asking for
            # one sentence keeps the tiny model in English and short (a looser prompt drifted to French).
            "You are a helpful voice assistant. Always reply in English, in one short and simple sentence."
        )
    ),
)
register_agent(
    "chat",
    lambda: Agent(
        instructions="You are a friendly conversation partner. Keep every answer short and spoken."
    ),
)
