"""The `appliance` command.

Errors are one line on stderr. Exit status: 0 ok, 1 runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from appliance.cli.errors import EXIT_FAILURE, EXIT_OK, as_cli_error
from appliance.cli.parser import build_parser
from appliance.system.journal_logging import configure_logging
from appliance.system.process import limit_malloc_arenas


def main(argv: Sequence[str] | None = None) -> int:
    limit_malloc_arenas()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging((logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)])
    handlers: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "run": _run,
        "console": _console,
        "say": _say,
        "models": _models,
        "bench": _bench,
        "config": _config,
        "doctor": _doctor,
        "fleet": _fleet,
        "agents": _agents,
        "release": _release,
    }
    try:
        return _run_async(handlers[args.command](args))
    except BrokenPipeError:
        # The reader went away (`appliance config | head`): nothing more to say, and no traceback
        # when Python flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:
        error = as_cli_error(exc)
        if error is None:
            raise
        print(f"appliance: error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _load_config(args: argparse.Namespace) -> Any:
    """The config in force: file, the fleet's saved changes (config.set), environment."""
    from appliance.fleet.config_store import ConfigStore

    store = ConfigStore(args.config)
    config = store.load()
    args.config_store = store
    return config


async def _run(args: argparse.Namespace) -> int:
    from appliance.cli.run import run_command

    return await run_command(args, _load_config(args))


async def _console(args: argparse.Namespace) -> int:
    from appliance.cli.console import console_command

    return await console_command(args, _load_config(args))


async def _say(args: argparse.Namespace) -> int:
    from appliance.cli.say import say_command

    return await say_command(args, _load_config(args))


async def _bench(args: argparse.Namespace) -> int:
    from appliance.cli.bench import bench_command

    return await bench_command(args, _load_config(args))


async def _models(args: argparse.Namespace) -> int:
    from rich.console import Console

    from appliance.cli.models import models_fetch, models_list, models_verify
    from appliance.models.store import open_store

    config = _load_config(args)
    store = open_store(config.models.dir)
    if args.models_command == "list":
        # A pipe gets a fixed width: rich would otherwise squeeze names to 80 columns.
        return models_list(store, Console(width=None if sys.stdout.isatty() else 120))
    if args.models_command == "fetch":
        return models_fetch(store, args.names or None, args.wheels, args.force, not args.no_url)
    return models_verify(store, args.names or None)


async def _fleet(args: argparse.Namespace) -> int:
    from appliance.cli.fleet import fleet_command

    return await fleet_command(args, _load_config(args))


async def _release(args: argparse.Namespace) -> int:
    from appliance.cli.release import release_command

    return release_command(args)


async def _config(args: argparse.Namespace) -> int:
    import json

    from appliance.config import effective_config

    print(json.dumps(effective_config(_load_config(args)), indent=2))
    return EXIT_OK


async def _agents(args: argparse.Namespace) -> int:
    from appliance.cli.agents import agents_command

    return await agents_command(args, _load_config(args))


async def _doctor(args: argparse.Namespace) -> int:
    from appliance.cli.doctor import doctor_command

    return await doctor_command(args, _load_config(args))


if __name__ == "__main__":
    sys.exit(main())
