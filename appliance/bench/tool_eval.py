"""Tool-use accuracy: does each spoken command reach the right tool with the right arguments?

Runs every command of tests/data/commands.toml through the home assistant's router with the
real LLM (routing only: no tool runs, no timer is set). A command is right when the tool
matches (or, for small talk, no tool is chosen) and the arguments equal the expected ones.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.agents.builtin.home import HomeAssistant
from appliance.agents.router import ArgumentError, ToolRouter
from appliance.providers.base import LLM

COMMANDS = Path(__file__).resolve().parents[2] / "tests" / "data" / "commands.toml"


@dataclass
class ToolAccuracy:
    total: int = 0
    correct: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "commands": self.total,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 3),
            "routed_by": self.by_route,
            "mean_routing_ms": round(1000 * self.seconds / self.total) if self.total else None,
            "wrong": self.wrong,
        }


async def evaluate_tools(llm: LLM, path: Path = COMMANDS) -> ToolAccuracy:
    commands = tomllib.loads(path.read_text())["command"]
    tools = HomeAssistant().tools
    router = ToolRouter()
    report = ToolAccuracy()
    for command in commands:
        expected_tool, expected_args = command["tool"] or None, command.get("arguments", {})
        started = time.monotonic()
        try:
            choice = await router.route(command["text"], tools, llm)
        except ArgumentError:
            choice = None
        report.seconds += time.monotonic() - started
        report.total += 1
        got_tool = choice.tool.name if choice else None
        got_args = _without_defaults(choice.arguments, choice.tool.parameters) if choice else {}
        route = choice.routed_by if choice else "none"
        report.by_route[route] = report.by_route.get(route, 0) + 1
        if got_tool == expected_tool and (got_tool is None or got_args == expected_args):
            report.correct += 1
        else:
            report.wrong.append(
                f"{command['text']!r}: got {got_tool}({got_args}), want {expected_tool}({expected_args})"
            )
    return report


def _without_defaults(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties", {})
    return {k: v for k, v in arguments.items() if properties.get(k, {}).get("default", object()) != v}
