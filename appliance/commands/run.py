"""`appliance run`: the device, or a recorded conversation through the whole pipeline."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from importlib import resources
from pathlib import Path

from appliance.audio.wav import WavError, read_wav, write_wav
from appliance.calls.manager import CallManager
from appliance.calls.setup import auto_join_credentials, create_calls
from appliance.cli import EXIT_OK, EXIT_USAGE, CliError
from appliance.commands.common import load_appliance
from appliance.config import AppConfig
from appliance.fleet.device import connect_fleet
from appliance.ops.config_store import ConfigStore
from appliance.transports.device import DeviceOptions, DeviceTransport
from appliance.transports.file import FileTransport
from appliance.voice.turn_record import TurnRecord

OUTPUT_RATE = 16_000
BUNDLED_REPLY = Path("appliance-reply.wav")


def bundled_question() -> Path:
    return Path(str(resources.files("appliance") / "data" / "question.wav"))


async def run_command(args: argparse.Namespace, config: AppConfig) -> int:
    if args.input is None:
        if args.output is not None or args.fast:
            raise CliError("--output and --fast go with --input", EXIT_USAGE)
        return await _run_device(config, args.json, getattr(args, "config_store", None))
    if args.output is None:
        raise CliError("--input needs --output (where to write the agent's audio)", EXIT_USAGE)
    return await run_file(config, args.input, args.output, as_json=args.json, fast=args.fast)


async def run_file(config: AppConfig, input_path: Path, output_path: Path, *, as_json: bool, fast: bool) -> int:
    try:
        audio = read_wav(input_path)
    except WavError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if not output_path.parent.exists():
        raise CliError(f"{output_path.parent} does not exist (the folder for --output)", EXIT_USAGE)
    appliance = await load_appliance(config)
    try:
        session = appliance.new_session(OUTPUT_RATE)
        session.on_turn.append(lambda record: _print_turn(record, as_json))
        result = await FileTransport(session, realtime=not fast).run(audio)
        await session.aclose()
    finally:
        await appliance.aclose()
    write_wav(output_path, result.output)
    if not as_json:
        print(f"wrote {output_path} ({result.output.duration:.1f} s)", file=sys.stderr)
    return EXIT_OK


def _print_turn(record: TurnRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record.to_json()), flush=True)
        return
    print(f"you:   {record.user_text}", flush=True)
    print(f"agent: {record.agent_text}{' [interrupted]' if record.interrupted else ''}", flush=True)
    print(f"       {record.latency_summary()}", flush=True)
    if record.error:
        print(f"       error: {record.error}", flush=True)


async def _run_device(config: AppConfig, as_json: bool, store: ConfigStore | None = None) -> int:
    from appliance.commands.devices import default_devices

    if config.audio.input == "none":
        return await run_headless(config, store)
    devices = default_devices()
    if config.audio.input_device is None and (devices.input is None or devices.output is None):
        question = bundled_question()
        print(
            f"no sound card found ({devices.reason}); answering the bundled spoken question "
            f"{question.name} into {BUNDLED_REPLY} instead",
            file=sys.stderr,
        )
        return await run_file(config, question, BUNDLED_REPLY, as_json=as_json, fast=False)
    return await run_on_device(config, as_json, store)


async def run_headless(config: AppConfig, store: ConfigStore | None = None) -> int:
    """No microphone: load the engines and serve LiveKit callers and MQTT commands until SIGTERM."""
    appliance = await load_appliance(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(
        'headless ([audio] input = "none"): engines ready, no microphone; waiting for calls and commands',
        file=sys.stderr,
        flush=True,
    )
    session = appliance.new_session(OUTPUT_RATE)
    session.on_turn.append(lambda record: _print_turn(record, False))
    calls = create_calls(config, appliance, session, device=None)
    try:
        _start_calls(calls, config)
        if config.mqtt.enabled:
            # No microphone and no speaker: commands that act on the device's own session say so.
            link = connect_fleet(config, None, stop, store=store, calls=calls)
            link.on_status.append(lambda status: print(f"mqtt: {status}", file=sys.stderr, flush=True))
            await link.run(stop)
        else:
            await stop.wait()
    finally:
        await calls.aclose()
        await session.aclose()
        await appliance.aclose()
    return EXIT_OK


def _start_calls(calls: CallManager, config: AppConfig) -> None:
    """Auto-join in the background: an unreachable server must not hold up the device."""
    task = asyncio.get_running_loop().create_task(calls.start(auto_join_credentials(config)), name="calls-start")
    calls.keep(task)


async def run_on_device(config: AppConfig, as_json: bool, store: ConfigStore | None = None) -> int:
    """Listen on the microphone and answer on the speaker until SIGINT or SIGTERM."""
    appliance = await load_appliance(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        session = appliance.new_session(OUTPUT_RATE)
        session.on_turn.append(lambda record: _print_turn(record, as_json))
        transport = DeviceTransport(session, device_options(config))
        transport.on_status.append(lambda status: print(f"sound device: {status}", file=sys.stderr, flush=True))
        calls = create_calls(config, appliance, session, transport)
        _start_calls(calls, config)
        if config.mqtt.enabled:
            link = connect_fleet(config, session, stop, store=store, appliance=appliance, calls=calls)
            link.on_status.append(lambda status: print(f"mqtt: {status}", file=sys.stderr, flush=True))
            transport.on_status.append(
                lambda status: (
                    link.publish_event({"type": "error", "source": "sound device", "message": status})
                    if status.startswith(("unavailable", "lost"))
                    else None
                )
            )
            await asyncio.gather(transport.run(stop), link.run(stop))
        else:
            await transport.run(stop)
        await calls.aclose()
        await session.aclose()
    finally:
        await appliance.aclose()
    return EXIT_OK


def device_options(config: AppConfig) -> DeviceOptions:
    audio = config.audio
    return DeviceOptions(
        input_device=audio.input_device,
        output_device=audio.output_device,
        sample_rate=audio.sample_rate,
        block_ms=audio.block_ms,
        speaker_buffer_ms=audio.speaker_buffer_ms,
        echo_cancellation=audio.echo_cancellation,
    )
