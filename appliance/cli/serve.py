"""`appliance run` as the service: the device's microphone and speaker (or headless), LiveKit rooms and
the MQTT link, under a lifecycle systemd can follow (READY, STATUS, the watchdog, a clean stop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from appliance.app import START_ERRORS, Appliance
from appliance.audio.frames import AudioChunk
from appliance.calls.events import CallEvent
from appliance.calls.manager import CallManager
from appliance.config import AppConfig
from appliance.control import Control, NotAvailable, SayQueueFull
from appliance.fleet.config_store import ConfigStore
from appliance.fleet.device import connect_fleet
from appliance.fleet.events import error_event
from appliance.system.lifecycle import Lifecycle
from appliance.transports.device import DeviceOptions, DeviceTransport
from appliance.transports.livekit_auth import RoomConfigError, RoomCredentials
from appliance.voice.remote import RecordedSpeech, wake_phrase_cutter
from appliance.voice.turn_record import TurnRecord
from appliance.wyoming.satellite import SatelliteServer
from appliance.wyoming.server import WyomingServer

log = logging.getLogger(__name__)

OUTPUT_RATE = 16_000
CLOSE_S = 5.0
"""How long the session may take to cancel a reply in progress when the process stops."""
ANNOUNCEMENT_START_TIMEOUT_S = 120.0
"""An announcement waits behind the turn in progress and the `say`s before it at most this long."""
PLAYOUT_WAIT_S = 2.0
"""After an announcement's length, how long `played` may wait for the device to have played it out."""


async def serve(config: AppConfig, *, with_device: bool, as_json: bool, store: ConfigStore | None) -> int:
    """Run until SIGTERM, SIGINT or a restart command; then stop cleanly and return 0, or
    `EXIT_RESTART` after a restart command (the unit restarts the service on it)."""
    appliance, config = await _started(config, store)
    life = Lifecycle()
    life.install_signal_handlers()
    session = appliance.new_session(OUTPUT_RATE)
    device: DeviceTransport | None = None
    if with_device:
        device = DeviceTransport(session, device_options(config))
        device.on_status.connect(lambda status: _say(f"sound device: {status}"))
        device.on_status.connect(lambda status: life.report("sound", status.state.value))
        device.on_status.connect(lambda _status: life.ready())  # the first attempt to open it is over
    else:
        _say('headless ([audio] input = "none"): engines ready, no microphone; waiting for calls and commands')
    calls = appliance.new_calls(session, device)
    calls.on_event.connect(print_call_event)
    calls.on_event.connect(lambda _event: life.report("rooms", _rooms(calls)))
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # The SDK logs each retry of its own at WARNING and ERROR; the call events say the same once,
        # in one line. `-vv` shows them.
        logging.getLogger("livekit").setLevel(logging.CRITICAL)
    # Headless, commands that act on the device's own microphone and speaker say `not_available`
    # unless a call is in progress (then they act on the conversation in the room).
    control = Control(session, appliance=appliance, calls=calls, headless=device is None)
    control.on_turn(lambda record: print_turn(record, as_json))
    control.on_state(lambda state: life.report("state", state.value))
    life.report("state", session.state.value)

    async def wind_down() -> None:
        await session.finish_sentence()
        await calls.aclose()

    jobs: list[Coroutine[Any, Any, None]] = [life.supervise(wind_down)]
    if device is not None:
        jobs.append(device.run(life.stop))
    if config.mqtt.enabled:
        sound = (lambda: device.status.state.value) if device is not None else None
        link = connect_fleet(config, control, life.request_restart, store=store, sound_device=sound)
        link.on_status.connect(lambda status: _say(f"mqtt: {status}"))
        link.on_status.connect(lambda status: life.report("mqtt", status.split(" ")[0]))
        if device is not None:
            device.on_status.connect(
                lambda status: (
                    link.publish_event(error_event("sound device", str(status))) if status.state.is_error else None
                )
            )
        jobs.append(link.run(life.stop))
    if config.wyoming.enabled:
        server = await start_wyoming(appliance, control)
        if server is not None:
            life.report("wyoming", f"port {server.port}")
            jobs.append(server.run(life.stop))
    if config.activation.pipeline != "local":
        satellite = await start_satellite(config, control)
        if satellite is not None:
            satellite.cut = wake_phrase_cutter(lambda: session.providers.stt, config.activation.wake_phrase)
            session.remote = satellite
            session.on_turn.connect(satellite.turn_finished)
            life.report("satellite", f"port {satellite.port}")
            jobs.append(satellite.run(life.stop))
    start = asyncio.get_running_loop().create_task(calls.start(auto_join_credentials(appliance)), name="calls-start")
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
    return life.exit_code


async def _started(config: AppConfig, store: ConfigStore | None) -> tuple[Appliance, AppConfig]:
    """Loaded with the config in force; if the box cannot start with what the fleet saved, with the last
    config that ran, then with the config file alone: a box the fleet can reach beats one that exits 2
    on every start. The config file's own faults still stop the start (nothing to fall back to)."""
    for last_good_too in (False, True):
        try:
            appliance = await Appliance.started(config)
            break
        except START_ERRORS as exc:
            fallback = store.fall_back(f"cannot start with it: {exc}", last_good_too) if store else None
            if fallback is None:
                raise
            config = fallback
    else:
        appliance = await Appliance.started(config)
    if store is not None:
        store.mark_good()
    return appliance, config


async def start_wyoming(appliance: Appliance, control: Control) -> WyomingServer | None:
    """The Wyoming services on the loaded engines; what the agent says on its own later (a timer set from
    Home Assistant rings) is said by the device, and a volume its tools set is the device's. A port that cannot
    be had is said once; the device runs on."""
    config = appliance.config
    services = appliance.wyoming_services()

    async def say_on_device(text: str) -> None:
        with contextlib.suppress(NotAvailable, SayQueueFull):
            control.say(text)

    def volume_on_device(level: int) -> None:
        with contextlib.suppress(NotAvailable):
            control.set_volume(level)

    runtime = services.agent.conversation.runtime
    runtime.announcer = say_on_device
    runtime.on_volume.connect(volume_on_device)  # "turn the volume down" asked in Home Assistant: this speaker
    name = (config.wyoming.name or config.mqtt.device_id) if config.wyoming.zeroconf else None
    server = WyomingServer(services, config.wyoming.host, config.wyoming.port, announce_as=name)
    try:
        await server.start()
    except OSError as exc:
        _say(f"wyoming: cannot listen on {config.wyoming.host}:{config.wyoming.port}: {exc.strerror or exc}")
        return None
    _say(f"wyoming: listening on {config.wyoming.host}:{server.port} (asr, tts, wake, handle)")
    return server


async def start_satellite(config: AppConfig, control: Control) -> SatelliteServer | None:
    """The listener Home Assistant connects to, to run the device as its satellite (and to make announcements
    on its speaker); a port that cannot be had is said once, and the device answers its requests itself."""
    wyoming = config.wyoming

    async def announce_on_device(audio: AudioChunk) -> bool:
        speech = RecordedSpeech(audio, "Home Assistant's announcement")
        try:
            control.announce(speech)
            conversation = control.conversation()
        except (NotAvailable, SayQueueFull) as exc:
            log.warning("satellite: announcement not played: %s", exc)
            return False
        if not await speech.played(timeout=ANNOUNCEMENT_START_TIMEOUT_S):
            return False
        # Its length has passed since it started; the speaker's own delay is over once the conversation has
        # played out what it queued (a user who speaks meanwhile ends the wait at the deadline).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PLAYOUT_WAIT_S):
                await conversation.until(lambda: conversation.idle)
        return True

    satellite = SatelliteServer(
        wyoming.host,
        wyoming.satellite_port,
        config.activation.wake_phrase,
        timeout_s=wyoming.satellite_timeout_s,
        fallback=config.activation.pipeline == "auto",
        name=wyoming.name or config.mqtt.device_id,
        announce=wyoming.zeroconf,
    )
    satellite.on_status = lambda status: _say(f"satellite: {status}")
    satellite.on_announcement = announce_on_device
    satellite.on_timer_finished = lambda name: say_timer_finished(control, name)
    try:
        await satellite.start()
    except OSError as exc:
        _say(f"satellite: cannot listen on {wyoming.host}:{wyoming.satellite_port}: {exc.strerror or exc}")
        return None
    _say(f"satellite: listening on {wyoming.host}:{satellite.port} for Home Assistant ({config.activation.pipeline})")
    return satellite


def timer_done_line(name: str | None) -> str:
    """What the device says when a timer Home Assistant kept for it goes off, as its own timers say it."""
    label = f"{name} timer" if name and "timer" not in name.lower() else (name or "timer")
    return f"Your {label} is done."


def say_timer_finished(control: Control, name: str | None) -> None:
    with contextlib.suppress(NotAvailable, SayQueueFull):
        control.say(timer_done_line(name))


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


def auto_join_credentials(appliance: Appliance) -> RoomCredentials | None:
    """The room to join at start, or None (not configured, or a secret that cannot be read: said once)."""
    try:
        return appliance.auto_join_credentials()
    except RoomConfigError as exc:
        _say(f"livekit: not joining {appliance.config.livekit.room}: {exc}")
        return None


def print_call_event(event: CallEvent) -> None:
    _say(f"livekit: {event.line()}")
