"""What a device does for each MQTT command, on top of its session (or headless, without one)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import Field

from appliance import __version__
from appliance.agents.agent import create_agent
from appliance.app import Appliance
from appliance.calls.manager import CallError, CallManager
from appliance.config import AppConfig, ConfigError, effective_config
from appliance.fleet.commands import CommandArgs, CommandError, CommandRouter, Handler
from appliance.fleet.config_apply import apply_config
from appliance.fleet.update_command import UpdateCommand
from appliance.ops.config_store import ConfigStore, StaleVersionError
from appliance.transports.livekit_auth import RoomConfigError, RoomCredentials, room_credentials
from appliance.voice.activation import ActivationMode
from appliance.voice.session import VoiceSession


class Empty(CommandArgs):
    pass


class SayArgs(CommandArgs):
    text: str = Field(min_length=1, max_length=1000)


class MuteArgs(CommandArgs):
    on: bool


class ConfigSetArgs(CommandArgs):
    patch: dict[str, Any]
    version: int


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
        session: VoiceSession | None,
        request_restart: Callable[[], None],
        store: ConfigStore | None = None,
        appliance: Appliance | None = None,
        calls: CallManager | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.calls = calls
        self.request_restart = request_restart
        self.store = store or ConfigStore()
        self.appliance = appliance
        self.started = time.monotonic()
        self.on_config: list[Callable[[AppConfig, int], None]] = []
        self._unmuted_mode = ActivationMode.ALWAYS

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
            "update": UpdateCommand(self.config).entry(),
        }
        return CommandRouter(table)

    def _session(self) -> VoiceSession:
        if self.session is not None:
            return self.session
        if self.calls is not None and self.calls.primary_call is not None:
            return self.calls.primary  # headless, in a call: act on the conversation in the room
        raise CommandError("not_available", "this device runs headless and is in no call: no voice session to act on")

    async def ping(self, _args: Empty) -> dict[str, Any]:
        state = self.session.state.value if self.session else "headless"
        return {"pong": True, "version": __version__, "uptime_s": round(time.monotonic() - self.started, 1),
                "state": state}  # fmt: skip

    async def config_get(self, _args: Empty) -> dict[str, Any]:
        return {"config": effective_config(self.config), "version": self.config_version}

    async def config_set(self, args: ConfigSetArgs) -> dict[str, Any]:
        """Validate the whole result, apply live (rolling back on failure), then save and report."""
        try:
            new, overrides = self.store.propose(args.patch, args.version)
        except StaleVersionError as exc:
            raise CommandError("stale_version", str(exc)) from None
        except ConfigError as exc:
            raise CommandError("bad_config", str(exc)) from None
        old = self.config
        try:
            result = await apply_config(old, new, self.appliance, self.session)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await apply_config(new, old, self.appliance, self.session)
            raise CommandError("apply_failed", f"{type(exc).__name__}: {exc}; the old config is kept") from None
        self.store.commit(overrides, args.version)
        self.config = new
        for callback in self.on_config:
            callback(new, args.version)
        return {"version": args.version, **result}

    async def handoff(self, args: HandoffArgs) -> dict[str, Any]:
        if args.to == "room":
            credentials = self._room(args.url, args.token, args.room)
            return await self._call(lambda calls: calls.handoff_to_room(credentials))
        if args.to == "local":
            return await self._call(lambda calls: calls.handoff_to_local())
        if not args.to.startswith("agent:"):
            raise CommandError("bad_request", "to must be 'agent:<name>', 'room' or 'local'")
        try:
            agent = create_agent(args.to[len("agent:") :])
        except KeyError as exc:
            raise CommandError("bad_request", str(exc).strip("'\"")) from None
        await self._session().handoff(agent)
        return {"agent": agent.name}

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
        session = self._session()
        task = asyncio.get_running_loop().create_task(session.say(args.text))
        session.keep(task)
        return {"queued": True}

    async def listen(self, _args: Empty) -> dict[str, Any]:
        self._session().listen()
        return {"listening": True}

    async def stop(self, _args: Empty) -> dict[str, Any]:
        return {"stopped": self._session().stop_speaking()}

    async def mute(self, args: MuteArgs) -> dict[str, Any]:
        session = self._session()
        if args.on:
            if session.activation.mode is not ActivationMode.MUTED:
                self._unmuted_mode = session.activation.mode
            session.set_activation_mode(ActivationMode.MUTED)
        elif session.activation.mode is ActivationMode.MUTED:
            session.set_activation_mode(self._unmuted_mode)
        return {"muted": session.activation.mode is ActivationMode.MUTED}

    async def volume(self, args: VolumeArgs) -> dict[str, Any]:
        """Set the speaker volume now (Home Assistant's volume number; config.set can do it too)."""
        self._session().output.volume = args.level / 100
        return {"volume": args.level}

    async def restart(self, _args: Empty) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.5, self.request_restart)  # after the reply is out
        return {"restarting": True}
