"""What a device does for each MQTT command, on top of its session (or headless, without one)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import Field

from appliance import __version__
from appliance.agents.registry import UnknownAgentError, agent_names, is_import_path
from appliance.app import START_ERRORS, preflight
from appliance.calls.manager import CallError, CallManager
from appliance.config import AppConfig, ConfigError, effective_config
from appliance.control import NotAvailable, SayQueueFull
from appliance.emitter import Emitter
from appliance.fleet.commands import CommandArgs, CommandError, CommandRouter, Handler
from appliance.fleet.config_apply import apply_config
from appliance.fleet.config_store import ConfigStore, StaleVersionError
from appliance.fleet.control_surface import ControlSurface
from appliance.fleet.remote_keys import forbidden_keys
from appliance.fleet.update_command import UpdateCommand
from appliance.transports.livekit_auth import RoomConfigError, RoomCredentials, room_credentials


class Empty(CommandArgs):
    pass


class SayArgs(CommandArgs):
    text: str = Field(min_length=1, max_length=1000)


class MuteArgs(CommandArgs):
    on: bool


class ConfigSetArgs(CommandArgs):
    patch: dict[str, Any]
    version: int = Field(ge=0, le=2**53)
    """JSON-safe: a version of 10^30 would block every later change."""


class VolumeArgs(CommandArgs):
    level: int = Field(ge=0, le=100)


class HandoffArgs(CommandArgs):
    to: str = Field(min_length=1)
    url: str | None = None
    token: str | None = None
    room: str | None = None


class JoinArgs(CommandArgs):
    url: str | None = None
    token: str | None = None
    room: str | None = None


class LeaveArgs(CommandArgs):
    room: str | None = None


class DeviceCommands:
    def __init__(
        self,
        config: AppConfig,
        control: ControlSurface | None,
        request_restart: Callable[[], None],
        store: ConfigStore | None = None,
        version: str = __version__,
    ) -> None:
        self.config = config
        self.version = version
        """The release this device runs (ping; an update older than it is a downgrade)."""
        self.control = control
        self.calls = control.calls if control is not None else None
        self.request_restart = request_restart
        self.store = store or ConfigStore()
        self.started = time.monotonic()
        self.on_config: Emitter[[AppConfig, int]] = Emitter("config")

    @property
    def config_version(self) -> int:
        return self.store.version

    def router(self) -> CommandRouter:
        table: dict[str, tuple[type[CommandArgs], Handler]] = {
            "ping": (Empty, self.ping),
            "config.get": (Empty, self.config_get),
            "config.set": (ConfigSetArgs, self.config_set),
            "handoff": (HandoffArgs, self.handoff),
            "join": (JoinArgs, self.join),
            "leave": (LeaveArgs, self.leave),
            "say": (SayArgs, self.say),
            "listen": (Empty, self.listen),
            "stop": (Empty, self.stop),
            "mute": (MuteArgs, self.mute),
            "restart": (Empty, self.restart),
            "volume": (VolumeArgs, self.volume),
            "update": UpdateCommand(self.config, running_version=self.version).entry(),
        }
        return CommandRouter(table)

    def _control(self) -> ControlSurface:
        if self.control is None:
            raise CommandError("not_available", "this device runs no voice session")
        return self.control

    def _conversation(self) -> ControlSurface:
        """The control surface, once it is sure there is a conversation to act on."""
        control = self._control()
        try:
            control.conversation()
        except NotAvailable as exc:
            raise CommandError("not_available", str(exc)) from None
        return control

    async def ping(self, _args: Empty) -> dict[str, Any]:
        state = self.control.state().state if self.control else "headless"
        return {"pong": True, "version": self.version, "uptime_s": round(time.monotonic() - self.started, 1),
                "state": state}  # fmt: skip

    async def config_get(self, _args: Empty) -> dict[str, Any]:
        return {"config": effective_config(self.config), "version": self.config_version}

    async def config_set(self, args: ConfigSetArgs) -> dict[str, Any]:
        """Validate the whole result, apply live (rolling back on failure), then save and report."""
        result = await self.apply_patch(args.patch, version=args.version)
        return {"version": args.version, **result}

    async def apply_desired(self, patch: dict[str, Any], versions: dict[str, int]) -> dict[str, Any]:
        """The merged desired documents, applied as a `config.set` would be; `versions` are recorded."""
        return await self.apply_patch(patch, desired=versions)

    @property
    def desired_versions(self) -> dict[str, int]:
        return self.store.desired_versions

    async def apply_patch(
        self, patch: dict[str, Any], version: int | None = None, desired: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """Check a patch as a start would, apply it live (back to the old config if that fails), save it
        with the version it came with, and tell the link. Raises CommandError and changes nothing."""
        agent = patch.get("agent")
        if isinstance(agent, dict) and isinstance(agent.get("name"), str):
            self._nameable_from_afar(agent["name"])
        forbidden = forbidden_keys(patch, self.config.fleet.remote_keys)
        if forbidden:
            raise CommandError(
                "forbidden_key",
                f"{', '.join(forbidden)}: hosts, credentials, paths and secret references are set on the device "
                "(its own [fleet] remote_keys can allow them)",
            )
        try:
            new, overrides = self.store.propose(patch, version)
        except StaleVersionError as exc:
            raise CommandError("stale_version", str(exc)) from None
        except ConfigError as exc:
            raise CommandError("bad_config", str(exc)) from None
        try:
            preflight(new)  # as a start would check it: the box must be able to come back with it
        except START_ERRORS as exc:
            raise CommandError("bad_config", f"the device could not start with this config: {exc}") from None
        old = self.config
        try:
            result = await apply_config(old, new, self.control)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await apply_config(new, old, self.control)
            raise CommandError("apply_failed", f"{type(exc).__name__}: {exc}; the old config is kept") from None
        self.store.commit(overrides, version, desired)
        self.config = new
        self.on_config.emit(new, self.store.version)
        return result

    @staticmethod
    def _nameable_from_afar(name: str) -> None:
        """An import path runs whatever it names (`os:abort`): the fleet may name registered agents and
        installed ones (entry points), and import paths the device's own config already loaded."""
        if is_import_path(name) and name not in agent_names():
            raise CommandError(
                "forbidden_key",
                f"agent {name!r}: an import path is the device's own config; install the agent as a package "
                "(an entry point of appliance.agents) to name it from the fleet",
            )

    async def handoff(self, args: HandoffArgs) -> dict[str, Any]:
        if args.to == "room":
            credentials = self._room(args.url, args.token, args.room)
            return await self._call(lambda calls: calls.handoff_to_room(credentials))
        if args.to == "local":
            return await self._call(lambda calls: calls.handoff_to_local())
        if not args.to.startswith("agent:"):
            raise CommandError("bad_request", "to must be 'agent:<name>', 'room' or 'local'")
        wanted = args.to[len("agent:") :]
        self._nameable_from_afar(wanted)
        known = agent_names()
        if wanted not in known:  # the registry's own message offers import paths, which the fleet refuses
            raise CommandError("unknown_agent", f"unknown agent {wanted!r} (known: {', '.join(known)})")
        try:
            name = await self._conversation().set_agent(wanted)
        except UnknownAgentError as exc:  # installed, but it does not load (its import or constructor failed)
            raise CommandError("bad_request", str(exc)) from None
        return {"agent": name}

    async def join(self, args: JoinArgs) -> dict[str, Any]:
        """Dispatch: a conversation of its own in a room, if the box has room for one more."""
        credentials = self._room(args.url, args.token, args.room)
        return await self._call(lambda calls: calls.join(credentials))

    async def leave(self, args: LeaveArgs) -> dict[str, Any]:
        return await self._call(lambda calls: calls.leave(args.room))

    def _room(self, url: str | None, token: str | None, room: str | None) -> RoomCredentials:
        try:
            return room_credentials(self.config.livekit, url, token, room)
        except RoomConfigError as exc:
            raise CommandError("bad_request", str(exc)) from None

    async def _call(self, action: Callable[[CallManager], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        if self.calls is None:
            raise CommandError("not_available", "remote calls are not running on this device")
        try:
            return await action(self.calls)
        except CallError as exc:
            raise CommandError(exc.code, str(exc)) from None

    async def say(self, args: SayArgs) -> dict[str, Any]:
        """Queued behind what is being said; a full queue is `busy` (a flood of says must not pile up)."""
        try:
            ahead = self._conversation().say(args.text)
        except SayQueueFull as exc:
            raise CommandError("busy", str(exc)) from None
        return {"queued": True, "ahead": ahead}

    async def listen(self, _args: Empty) -> dict[str, Any]:
        self._conversation().listen()
        return {"listening": True}

    async def stop(self, _args: Empty) -> dict[str, Any]:
        return {"stopped": self._conversation().stop()}

    async def mute(self, args: MuteArgs) -> dict[str, Any]:
        """Held until unmuted: a call that starts or ends meanwhile does not lift it."""
        return {"muted": self._conversation().mute(args.on)}

    async def volume(self, args: VolumeArgs) -> dict[str, Any]:
        """Set the speaker volume now (Home Assistant's volume number; config.set can do it too)."""
        return {"volume": self._conversation().set_volume(args.level)}

    async def restart(self, _args: Empty) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.5, self.request_restart)  # after the reply is out
        return {"restarting": True}
