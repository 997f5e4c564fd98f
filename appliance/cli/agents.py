"""`appliance agents list`: every agent this box can load, where it comes from, its tools and handoffs."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from appliance.agents.catalog import AgentDescription, describe_agent, describe_all
from appliance.agents.registry import add_search_path, agent_names, is_import_path
from appliance.cli.errors import EXIT_FAILURE, EXIT_OK
from appliance.config import AppConfig


async def agents_command(args: argparse.Namespace, config: AppConfig) -> int:
    add_search_path(config.agent.search_path or [])
    described = describe_all()
    configured = config.agent.name
    if is_import_path(configured) and configured not in agent_names():
        try:
            described.append(describe_agent(configured, "import path (config)"))
        except Exception as error:
            described.append((configured, "import path (config)", error))
    failed = [d for d in described if not isinstance(d, AgentDescription)]
    if args.json:
        for item in described:
            if isinstance(item, AgentDescription):
                print(json.dumps({**item.to_json(), "configured": item.name == configured}))
            else:
                name, origin, problem = item
                print(json.dumps({"name": name, "origin": origin, "error": str(problem)}))
    else:
        table = Table("agent", "from", "tools", "hands over to")
        for item in described:
            if isinstance(item, AgentDescription):
                tools = "\n".join(f"{t.name}: {t.description}" for t in item.tools) or "-"
                mark = " (configured)" if item.name == configured else ""
                table.add_row(f"{item.name}{mark}", item.origin, tools, ", ".join(item.handoffs) or "-")
            else:
                name, origin, problem = item
                table.add_row(name, origin, f"[red]cannot load: {problem}[/red]", "-")
        Console(width=None if sys.stdout.isatty() else 160).print(table)
    return EXIT_FAILURE if failed else EXIT_OK
