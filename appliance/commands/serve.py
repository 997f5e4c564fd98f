"""`appliance run` as the service: the device's microphone and speaker (or headless), LiveKit rooms and
the MQTT link, under a lifecycle systemd can follow (READY, STATUS, the watchdog, a clean stop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Coroutine
from typing import Any

from appliance.calls.manager import CallManager
from appliance.calls.setup import auto_join_credentials, create_calls
from appliance.cli import EXIT_OK
from appliance.commands.common import load_appliance
from appliance.config import AppConfig
from appliance.fleet.device import connect_fleet
from appliance.ops.config_store import ConfigStore
from appliance.ops.lifecycle import Lifecycle
from appliance.transports.device import DeviceOptions, DeviceTransport
from appliance.voice.turn_record import TurnRecord

OUTPUT_RATE = 16_000
CLOSE_S = 5.0
"""How long the session may take to cancel a reply in progress when the process stops."""


async def serve(config: AppConfig, *, with_device: bool, as_json: bool, store: ConfigStore | None) -> int:
    """Run until SIGTERM, SIGINT or a restart command; then stop cleanly and return 0."""
    appliance = await load_appliance(config)
    life = Lifecycle()
    life.install_signal_handlers()
    session = appliance.new_session(OUTPUT_RATE)
    session.on_turn.append(lambda record: print_turn(record, as_json))
    session.on_state.append(lambda state: life.report("state", state.value))
    life.report("state", session.state.value)
    device: DeviceTransport | None = None
    if with_device:
        device = DeviceTransport(session, device_options(config))
        device.on_status.append(lambda status: _say(f"sound device: {status}"))
        device.on_status.append(lambda status: life.report("sound", status.split(":")[0]))
        device.on_status.append(lambda _status: life.ready())  # the first attempt to open it is over
    else:
        _say('headless ([audio] input = "none"): engines ready, no microphone; waiting for calls and commands')
    calls = create_calls(config, appliance, session, device)
    calls.on_event.append(lambda _event: life.report("rooms", _rooms(calls)))

    async def wind_down() -> None:
        await session.finish_sentence()
        await calls.aclose()

    jobs: list[Coroutine[Any, Any, None]] = [life.supervise(wind_down)]
    if device is not None:
        jobs.append(device.run(life.stop))
    if config.mqtt.enabled:
        # Headless, commands that act on the device's own microphone and speaker say `not_available`.
        link = connect_fleet(
            config, session if device else None, life.stop_requested, store=store, appliance=appliance, calls=calls
        )
        link.on_status.append(lambda status: _say(f"mqtt: {status}"))
        link.on_status.append(lambda status: life.report("mqtt", status.split(" ")[0]))
        if device is not None:
            device.on_status.append(
                lambda status: (
                    link.publish_event({"type": "error", "source": "sound device", "message": status})
                    if status.startswith(("unavailable", "lost"))
                    else None
                )
            )
        jobs.append(link.run(life.stop))
    start = asyncio.get_running_loop().create_task(calls.start(auto_join_credentials(config)), name="calls-start")
    calls.keep(start)  # in the background: an unreachable LiveKit server must not hold the device up
    if device is None:
        life.ready()
    try:
        await asyncio.gather(*jobs)
    finally:
        await calls.aclose()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.aclose(), CLOSE_S)
        await appliance.aclose()
    return EXIT_OK


def print_turn(record: TurnRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record.to_json()), flush=True)
        return
    print(f"you:   {record.user_text}", flush=True)
    print(f"agent: {record.agent_text}{' [interrupted]' if record.interrupted else ''}", flush=True)
    print(f"       {record.latency_summary()}", flush=True)
    if record.error:
        print(f"       error: {record.error}", flush=True)


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


def _rooms(calls: CallManager) -> str:
    return ",".join(f"{c.name}({c.caller or 'waiting'})" for c in calls.calls) or "none"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
