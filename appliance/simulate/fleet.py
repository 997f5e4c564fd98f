"""N simulated devices in one asyncio process, each running the real device-side fleet code.

Each device is what `appliance run` builds for the fleet (`fleet.device.connect_fleet`): its own config
(the same file and environment as a real box, plus its id, group, broker and a state dir of its own),
its `ConfigStore`, the MQTT link with its own client id (and account, if given), the command handlers,
desired state, telemetry and Home Assistant discovery. Only the conversation is a stand-in
(`SimulatedConversation`). Connects are spread over `jitter_s` so a thousand links do not hit the
broker in the same instant; a `restart` command restarts that one device (its link reconnects with
the saved config).

Releases: the real `update` command runs on a simulated device, against the real `[update] trusted_keys`
of its config, so an unsigned, untrusted, altered or older release is refused exactly as on a box. Its
`[update] installer` is the simulator's stand-in (`simulate/installer.py`, one small script per device
in its state dir): it records the release's version in the state dir and writes the outcome, and the
device then restarts, as the service does after a real install, and comes back reporting that version
(`connect_fleet(version=...)`; a device that never installed anything reports this package's version).
A staged release rollout can so be run and tested over many devices without installing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.fleet.config_store import ConfigStore
from appliance.fleet.device import connect_fleet
from appliance.providers.secrets import resolve_secret
from appliance.simulate import installer
from appliance.simulate.conversation import SimulatedConversation

INSTALLER_NAME = "simulated-installer"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationOptions:
    devices: int
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "sim-"
    """Device ids are the prefix and a zero-padded number: sim-0001."""
    groups: tuple[str, ...] = ("sim",)
    """Devices are dealt over these groups in turn."""
    config_path: Path | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    """The environment a real box would read (APPLIANCE_...), under the per-device settings."""
    state_root: Path | None = None
    """Each device's state dir is a folder in here (a temporary dir, removed at the end, if None)."""
    jitter_s: float = 2.0
    telemetry_interval_s: float | None = None
    username: str | None = None
    """A template: `{id}` becomes the device id (one broker account per device)."""
    password: str | None = None
    """A template as well; `env:` and `file:` references work as on a device (file:/etc/sim/{id}.pass)."""
    latency_ms: tuple[int, int] = (400, 900)
    """Each device's voice-to-voice latency is drawn once from this range (seeded by its id)."""
    talk_every_s: float = 0.0
    """Each device runs a turn this often (0: only when told to `listen`)."""


class SimulatedDevice:
    def __init__(self, number: int, options: SimulationOptions, state_root: Path) -> None:
        self.number = number
        self.id = f"{options.prefix}{number:04d}"
        self.group = options.groups[(number - 1) % len(options.groups)]
        self.options = options
        self.state_dir = state_root / self.id
        self.latency_ms = random.Random(self.id).randint(*options.latency_ms)
        self.connected = False
        self.answered = 0
        self.turns = 0
        self.restarts = 0

    def environ(self) -> dict[str, str]:
        settings = {
            "APPLIANCE_MQTT__ENABLED": "true",
            "APPLIANCE_MQTT__HOST": self.options.host,
            "APPLIANCE_MQTT__PORT": str(self.options.port),
            "APPLIANCE_MQTT__DEVICE_ID": self.id,
            "APPLIANCE_MQTT__GROUP": self.group,
            "APPLIANCE_STATE__DIR": str(self.state_dir),
            "APPLIANCE_UPDATE__INSTALLER": str(self.state_dir / INSTALLER_NAME),
        }
        if self.options.telemetry_interval_s is not None:
            settings["APPLIANCE_MQTT__TELEMETRY_INTERVAL_S"] = str(self.options.telemetry_interval_s)
        if self.options.username is not None:
            settings["APPLIANCE_MQTT__USERNAME"] = self.options.username.replace("{id}", self.id)
        if self.options.password is not None:
            settings["APPLIANCE_MQTT__PASSWORD"] = self.options.password.replace("{id}", self.id)
        return {**self.options.environ, **settings}

    async def run(self, stop: asyncio.Event, delay_s: float) -> None:
        """Until `stop`: start as a box would (config file, saved fleet config, environment), run the
        link; a `restart` command starts it again."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)
        self._write_installer()
        while not stop.is_set():
            restart = asyncio.Event()
            store = ConfigStore(self.options.config_path, self.environ())
            config = store.load()
            conversation = SimulatedConversation(config, self.latency_ms)
            version = installer.installed_version(self.state_dir) or __version__
            link = connect_fleet(config, conversation, restart.set, store=store, version=version)
            link.on_status.connect(self._status)
            link.on_answered.connect(functools.partial(self._answered, restart=restart))
            conversation.on_turn(lambda _record: self._turned())
            store.mark_good()
            if self.options.talk_every_s > 0:
                talking = asyncio.create_task(self._talk(conversation))
            ending = asyncio.Event()
            watch = asyncio.create_task(_first_of(stop, restart, ending))
            try:
                await link.run(ending)
            finally:
                watch.cancel()
                if self.options.talk_every_s > 0:
                    talking.cancel()
                await conversation.aclose()
                self.connected = False
            if restart.is_set():
                self.restarts += 1

    async def _talk(self, conversation: SimulatedConversation) -> None:
        rng = random.Random(f"{self.id}-talk")
        while True:
            await asyncio.sleep(self.options.talk_every_s * rng.uniform(0.5, 1.5))
            conversation.listen()

    def _status(self, status: str) -> None:
        self.connected = status == "connected"

    def _answered(self, name: str, reply: dict[str, Any], restart: asyncio.Event) -> None:
        self.answered += 1
        result = reply.get("result")
        if name == "update" and reply.get("ok") and isinstance(result, dict) and result.get("outcome") == "installed":
            restart.set()  # as the service restarts into a new release (the reply is out already)

    def _write_installer(self) -> None:
        """This device's `[update] installer`: the stand-in, told where this device keeps its state."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        script = self.state_dir / INSTALLER_NAME
        script.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{installer.__file__}" --state-dir "{self.state_dir}" "$@"\n'
        )
        script.chmod(0o755)

    def _turned(self) -> None:
        self.turns += 1


async def _first_of(stop: asyncio.Event, restart: asyncio.Event, ending: asyncio.Event) -> None:
    """Set `ending` once the simulation stops or this device restarts."""
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(restart.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    ending.set()


class SimulatedFleet:
    """`async with SimulatedFleet(options) as fleet:` runs every device until the block ends."""

    def __init__(self, options: SimulationOptions) -> None:
        if options.devices < 1:
            raise ValueError("a simulation needs at least one device")
        self.options = options
        self._temporary = options.state_root is None
        self.state_root = options.state_root or Path(tempfile.mkdtemp(prefix="appliance-sim-"))
        self.devices = [SimulatedDevice(n, options, self.state_root) for n in range(1, options.devices + 1)]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SimulatedFleet:
        first = self.devices[0]
        # A bad config or password reference fails here, once (ConfigError, SecretError), not in every link;
        # `__aexit__` is not called then, so the temporary state folder goes now.
        try:
            resolve_secret(ConfigStore(self.options.config_path, first.environ()).load().mqtt.password)
        except BaseException:
            self._remove_temporary()
            raise
        rng = random.Random(0)
        self._tasks = [
            asyncio.create_task(d.run(self._stop, rng.uniform(0, self.options.jitter_s)), name=d.id)
            for d in self.devices
        ]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Every link publishes its offline status and disconnects."""
        self._stop.set()
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        for device, outcome in zip(self.devices, outcomes, strict=False):
            if isinstance(outcome, Exception):
                log.error("simulated device %s failed: %s", device.id, outcome)
        self._remove_temporary()

    def _remove_temporary(self) -> None:
        if self._temporary:
            shutil.rmtree(self.state_root, ignore_errors=True)

    async def wait_connected(self, timeout: float) -> None:
        """Until every device is connected (TimeoutError past `timeout`)."""
        async with asyncio.timeout(timeout):
            while self.report()["connected"] < len(self.devices):
                await asyncio.sleep(0.1)

    def report(self) -> dict[str, Any]:
        return {
            "devices": len(self.devices),
            "connected": sum(d.connected for d in self.devices),
            "commands_answered": sum(d.answered for d in self.devices),
            "turns": sum(d.turns for d in self.devices),
            "restarts": sum(d.restarts for d in self.devices),
        }
