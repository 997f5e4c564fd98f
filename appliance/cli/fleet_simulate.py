"""`appliance fleet simulate --devices N`: simulated devices on the broker until Ctrl-C, SIGTERM or `--duration`.

A line on stderr every `--report-every` seconds (`simulate: 30/30 connected, 30 commands answered, 0 turns`)
and, at the end, the same figures as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from appliance.cli.errors import EXIT_OK, UsageError
from appliance.config import AppConfig, MqttConfig
from appliance.simulate.fleet import SimulatedFleet, SimulationOptions


async def simulate_command(args: argparse.Namespace, config: AppConfig, mqtt: MqttConfig) -> int:
    if args.devices < 1:
        raise UsageError(f"--devices must be at least 1, not {args.devices}")
    groups = tuple(g for g in args.group.split(",") if g)
    if not groups:
        raise UsageError("--group needs at least one group name")
    options = SimulationOptions(
        devices=args.devices,
        host=mqtt.host,
        port=mqtt.port,
        prefix=args.prefix,
        groups=groups,
        config_path=args.config,
        environ=dict(os.environ),
        state_root=args.state_dir,
        jitter_s=args.jitter,
        telemetry_interval_s=args.telemetry_interval,
        username=args.username,
        password=args.password,
        talk_every_s=args.talk_every,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimulatedFleet(options) as fleet:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                while not stop.is_set():
                    _say(fleet.report())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), args.report_every)
        report = fleet.report()
    _say(report)
    print(json.dumps(report), flush=True)
    return EXIT_OK


def _say(report: dict[str, Any]) -> None:
    print(
        f"simulate: {report['connected']}/{report['devices']} connected, {report['commands_answered']} commands "
        f"answered, {report['turns']} turns",
        file=sys.stderr,
        flush=True,
    )
