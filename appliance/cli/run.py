"""`appliance run`: the device, or a recorded conversation through the whole pipeline."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from appliance.app import Appliance
from appliance.audio.wav import WavError, read_wav, write_wav
from appliance.cli.errors import EXIT_OK, UsageError
from appliance.cli.serve import OUTPUT_RATE, print_turn, serve
from appliance.config import AppConfig
from appliance.fleet.config_store import ConfigStore
from appliance.transports.file import FileTransport

BUNDLED_REPLY = Path("appliance-reply.wav")


def bundled_question() -> Path:
    return Path(str(resources.files("appliance") / "data" / "question.wav"))


async def run_command(args: argparse.Namespace, config: AppConfig) -> int:
    if args.input is None:
        if args.output is not None or args.fast:
            raise UsageError("--output and --fast go with --input")
        return await _run_device(config, args.json, getattr(args, "config_store", None))
    if args.output is None:
        raise UsageError("--input needs --output (where to write the agent's audio)")
    return await run_file(config, args.input, args.output, as_json=args.json, fast=args.fast)


async def run_file(config: AppConfig, input_path: Path, output_path: Path, *, as_json: bool, fast: bool) -> int:
    try:
        audio = read_wav(input_path)
    except WavError as exc:
        raise UsageError(str(exc)) from None
    check_writable(output_path)
    appliance = await Appliance.started(config)
    try:
        session = appliance.new_session(OUTPUT_RATE)
        session.on_turn.connect(lambda record: print_turn(record, as_json))
        result = await FileTransport(session, realtime=not fast).run(audio)
        await session.aclose()
    finally:
        await appliance.aclose()
    write_wav(output_path, result.output)
    if not as_json:
        print(f"wrote {output_path} ({result.output.duration:.1f} s)", file=sys.stderr)
    return EXIT_OK


async def _run_device(config: AppConfig, as_json: bool, store: ConfigStore | None = None) -> int:
    from appliance.cli.devices import default_devices

    if config.audio.input == "none":
        return await serve(config, with_device=False, as_json=as_json, store=store)
    devices = default_devices()
    if config.audio.input_device is None and (devices.input is None or devices.output is None):
        question = bundled_question()
        print(
            f"no sound card found ({devices.reason}); answering the bundled spoken question "
            f"{question.name} into {BUNDLED_REPLY} instead",
            file=sys.stderr,
        )
        return await run_file(config, question, BUNDLED_REPLY, as_json=as_json, fast=False)
    return await serve(config, with_device=True, as_json=as_json, store=store)


def check_writable(output_path: Path) -> None:
    """Before the whole conversation runs, not after: where --output goes must take a file."""
    folder = output_path.parent
    if not folder.exists():
        raise UsageError(f"{folder} does not exist (the folder for --output)")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder (where --output was to go)")
    if output_path.is_dir():
        raise UsageError(f"{output_path} is a folder; --output needs a file name")
    if not os.access(folder, os.W_OK) or (output_path.exists() and not os.access(output_path, os.W_OK)):
        raise UsageError(f"cannot write {output_path} (no permission)")
