"""Agents by name, so config, the fleet and the console can pick one: `register_agent`, `create_agent`."""

from __future__ import annotations

from collections.abc import Callable

from appliance.agents.agent import Agent

_REGISTRY: dict[str, Callable[[], Agent]] = {}


class UnknownAgentError(KeyError):
    """No agent is registered under that name; the message (one line) lists the known ones.

    A `KeyError` for callers that looked names up in a mapping before, but printed without its quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0])


def register_agent(name: str, factory: Callable[[], Agent]) -> None:
    """Make `factory` (an Agent subclass or a function returning one) available as `name`."""
    _REGISTRY[name] = factory


def create_agent(name: str) -> Agent:
    _load_builtins()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownAgentError(f"unknown agent {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None
    agent = factory()
    agent.name = name
    return agent


def agent_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    import appliance.agents.builtin  # noqa: F401  (registers the built-in agents)
