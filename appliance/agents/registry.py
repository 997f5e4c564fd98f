"""Agents by name, so config, the fleet and the console can pick one.

A name is one of:
- a registered name (`register_agent`; the built-ins: assistant, chef, chat);
- an entry point in the group `appliance.agents` of an installed package (`pip install my-agents` is
  enough: `[project.entry-points."appliance.agents"] kitchen = "my_agents.kitchen:Kitchen"`);
- an import path `package.module:Name`, an `Agent` subclass or a zero-argument factory returning an
  Agent, resolved against `sys.path` plus the folders given to `add_search_path` (the config's
  `[agent] search_path`; by default the config file's folder).

What is loaded once is registered under the name it was asked by, so a handoff back to it is quick.
Failures are one line: `agent "kitchen:Kitchen": no module named 'kitchen'`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.agents.agent import Agent

ENTRY_POINT_GROUP = "appliance.agents"

_REGISTRY: dict[str, Callable[[], Agent]] = {}
_ORIGINS: dict[str, str] = {}
"""Where each registered name came from: "built-in", "registered", "entry point DIST", "import path"."""


class UnknownAgentError(KeyError):
    """No agent can be loaded under that name; the message (one line) says why.

    A `KeyError` for callers that looked names up in a mapping before, but printed without its quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class AgentSource:
    name: str
    origin: str
    """built-in, registered, entry point <distribution>, import path."""


def register_agent(name: str, factory: Callable[[], Agent], origin: str = "registered") -> None:
    """Make `factory` (an Agent subclass or a function returning one) available as `name`."""
    _REGISTRY[name] = factory
    _ORIGINS[name] = origin


def add_search_path(folders: Sequence[str | Path]) -> None:
    """Folders where import paths are looked up too (after `sys.path`'s own entries)."""
    for folder in folders:
        resolved = str(Path(folder).resolve())
        if resolved not in sys.path:
            sys.path.append(resolved)


def is_import_path(name: str) -> bool:
    return ":" in name


def create_agent(name: str) -> Agent:
    factory, origin = _find(name)
    try:
        agent = factory()
    except Exception as exc:
        raise UnknownAgentError(f"agent {name!r} failed to start: {type(exc).__name__}: {exc}") from None
    if not isinstance(agent, Agent):
        raise UnknownAgentError(f"agent {name!r}: its factory returned {type(agent).__name__}, not an Agent")
    if name not in _REGISTRY:  # loaded and working: named from now on (a handoff back is quick)
        register_agent(name, factory, origin)
    agent.name = name
    return agent


def _find(name: str) -> tuple[Callable[[], Agent], str]:
    """The factory for a name (registered, an entry point or an import path) and where it comes from."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name], _ORIGINS[name]
    if is_import_path(name):
        return _import(name, name), "import path"
    entry = _entry_points().get(name)
    if entry is not None:
        return _import(name, entry.value), f"entry point {_distribution(entry)}"
    known = ", ".join(agent_names())
    raise UnknownAgentError(f"unknown agent {name!r} (known: {known}; or an import path package.module:Name)")


def agent_names() -> list[str]:
    """Every name an agent can be loaded by without an import path: registered ones and entry points
    (and the import paths loaded so far)."""
    _load_builtins()
    return sorted({*_REGISTRY, *_entry_points()})


def agent_sources() -> list[AgentSource]:
    """Every agent `agent_names` lists, with where it comes from."""
    _load_builtins()
    entries = _entry_points()
    return [
        AgentSource(name, _ORIGINS.get(name) or f"entry point {_distribution(entries[name])}") for name in agent_names()
    ]


def name_of(cls: type[Agent]) -> str | None:
    """The name an agent class is known by (registered, or an entry point naming it), without importing
    any plugin to find out."""
    _load_builtins()
    for name, factory in _REGISTRY.items():
        if factory is cls:
            return name
    target = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for name, entry in _entry_points().items() if entry.value == target), None)


def _import(name: str, target: str) -> Callable[[], Agent]:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UnknownAgentError(f"agent {name!r}: an import path is package.module:Name")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UnknownAgentError(f"agent {name!r}: no module named {exc.name!r}") from None
    except Exception as exc:  # the module itself failed: its own error, in one line
        failure = f"{type(exc).__name__}: {exc}"
        raise UnknownAgentError(f"agent {name!r}: importing {module_name} failed: {failure}") from None
    found: object = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UnknownAgentError(f"agent {name!r}: {module_name} has no {attribute!r}")
        found = getattr(found, part)
    if inspect.isclass(found):
        if not issubclass(found, Agent):
            raise UnknownAgentError(f"agent {name!r}: {attribute} is a class but not an Agent")
        return found
    if not callable(found):
        raise UnknownAgentError(f"agent {name!r}: {attribute} is neither an Agent subclass nor a factory")
    factory = found

    def checked() -> Agent:
        agent = factory()
        if not isinstance(agent, Agent):
            raise TypeError(f"{attribute}() returned {type(agent).__name__}, not an Agent")
        return agent

    return checked


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {entry.name: entry for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _distribution(entry: importlib.metadata.EntryPoint) -> str:
    return entry.dist.name if entry.dist is not None else "?"


def _load_builtins() -> None:
    import appliance.agents.builtin  # noqa: F401  (registers the built-in agents)
