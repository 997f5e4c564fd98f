"""Remote calls: which conversation is where, who is listening, and how many the box takes.

The box has a primary conversation, the one its microphone and speaker serve. A
handoff (or a caller in an auto-joined room, when the box has no other room for
it) moves that very session, chat context and all, into a LiveKit room; handing
back brings it home. Further rooms get sessions of their own up to
`livekit.max_sessions`; beyond that a caller or a dispatch is told the box is busy
instead of the running conversation being slowed down.

An operator who joins a room takes over: the agent stops answering there and the
device's microphone and speaker are bridged to the room like an intercom, until
the operator leaves or calls the `handback` RPC.

Everything is decided in one place (`_reconcile`) from the current facts, so a
join, a leave, a rejoin after a dropped connection or a command all end in the
same consistent routing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from appliance.aio import TaskSet
from appliance.calls.events import CallEvent
from appliance.calls.room_call import RoomCall
from appliance.config import LiveKitConfig
from appliance.emitter import Emitter
from appliance.transports.device import DeviceTransport
from appliance.transports.livekit_auth import RoomCredentials
from appliance.transports.livekit_room import Role, RoomError, RoomRules, RoomTransport
from appliance.transports.ports import Announcement, Intercom, SessionPort
from appliance.transports.status import RoomState, RoomStatus
from appliance.voice.activation_modes import ModeOverride
from appliance.voice.session import VoiceSession
from appliance.voice.state import SessionState

log = logging.getLogger(__name__)

CALLER_GRACE_S = 20.0
"""After a rejoin, how long a missing caller is waited for before the call counts as over."""
BUSY_LINE = "Sorry, I'm in another conversation right now. Please call again later."


class CallError(RuntimeError):
    """A call request that cannot be done; `code` is the MQTT error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


Synthesize = Callable[[str], Awaitable[Any]]
"""Text -> 16 kHz int16 samples (for the 'busy' line)."""


class CallManager:
    def __init__(
        self,
        config: LiveKitConfig,
        primary: VoiceSession,
        device: DeviceTransport | None,
        new_session: Callable[[], VoiceSession],
        synthesize: Synthesize | None = None,
        transport_factory: Callable[[RoomCredentials, RoomRules], RoomTransport] = RoomTransport,
    ) -> None:
        self.config = config
        self.primary = primary
        self.device = device
        self.new_session = new_session
        self.synthesize = synthesize
        self.transport_factory = transport_factory
        self.calls: list[RoomCall] = []
        self.on_event: Emitter[[CallEvent]] = Emitter("call event")
        self._primary_port = SessionPort(primary)
        self._ports: dict[int, SessionPort] = {id(primary): self._primary_port}
        self._follow_session(primary)
        self._intercom = Intercom()
        self._operator: tuple[RoomCall, str] | None = None
        self._tasks = TaskSet("calls")
        self._ticker: asyncio.Task[None] | None = None
        self._commands = asyncio.Lock()
        """MQTT commands run side by side; the ones that move conversations take turns."""
        self.rules = RoomRules(
            caller=config.caller,
            operator_prefix=config.operator_prefix,
            operator_role=config.operator_role,
            connect_timeout_s=config.connect_timeout_s,
        )

    # ----- facts ------------------------------------------------------------------------------------

    @property
    def primary_call(self) -> RoomCall | None:
        return next((c for c in self.calls if c.primary), None)

    def sessions_in_use(self) -> int:
        primary = 1 if (self.device is not None or self.primary_call is not None) else 0
        return primary + sum(1 for c in self.calls if c.session is not None and not c.primary)

    def snapshot(self) -> list[dict[str, Any]]:
        """For telemetry and replies."""
        return [call.describe() for call in self.calls]

    # ----- lifecycle --------------------------------------------------------------------------------

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a task started on the calls' behalf (cancelled at `aclose`)."""
        self._tasks.keep(task)

    async def start(self, credentials: RoomCredentials | None) -> None:
        """Auto-join `credentials` (if given) and keep at it; failures are reported, never raised."""
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="calls-idle")
        if credentials is None:
            return
        call = self._new_call(credentials, auto=True)
        try:
            await call.transport.join()
        except RoomError as exc:
            self._emit("error", call, message=str(exc))
            if exc.permanent:
                self.calls.remove(call)
                return
        if call.transport.connected:
            self._emit("joined", call)
        self._keep_running(call)
        self._reconcile()

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for call in list(self.calls):
            await self._leave(call, "shutting down")
        await self._tasks.wait(5.0)  # let sessions that were released finish closing
        await self._tasks.aclose()

    # ----- commands (MQTT) --------------------------------------------------------------------------

    async def handoff_to_room(self, credentials: RoomCredentials) -> dict[str, Any]:
        """Move the primary conversation into a room (joining it if need be)."""
        async with self._commands:
            return await self._handoff_to_room(credentials)

    async def _handoff_to_room(self, credentials: RoomCredentials) -> dict[str, Any]:
        current = self.primary_call
        if current is not None:
            if credentials.room in (None, current.name):
                return {**current.describe(), "already": True}
            raise CallError("busy", f"the conversation is in room {current.name!r}; hand it back first")
        call = self._find(credentials.room)
        if call is not None and call.session is not None:
            raise CallError("busy", f"room {call.name!r} already has a conversation of its own")
        if call is None:
            call = await self._join(credentials, auto=False)
        call.declined.clear()  # asked for explicitly: whoever is there is the caller
        self._move_primary(call)
        self._reconcile()
        self._emit("handoff", call, to="room")
        return call.describe()

    async def handoff_to_local(self) -> dict[str, Any]:
        async with self._commands:
            return await self._handoff_to_local()

    async def _handoff_to_local(self) -> dict[str, Any]:
        call = self.primary_call
        if call is None:
            return {"local": True, "already": True}
        if self.device is None:
            raise CallError("not_available", "this device has no microphone to bring the conversation back to")
        call.declined.update(call.transport.with_role(Role.CALLER))
        self._release(call)
        self._emit("handoff", call, to="local")
        if call.auto:
            self._reconcile()
        else:
            await self._leave(call, "handed back to the device")
        return {"local": True}

    async def join(self, credentials: RoomCredentials) -> dict[str, Any]:
        """Dispatch: a conversation of its own in a room (the primary stays where it is)."""
        async with self._commands:
            return await self._dispatch(credentials)

    async def _dispatch(self, credentials: RoomCredentials) -> dict[str, Any]:
        existing = self._find(credentials.room)
        if existing is not None:
            return {**existing.describe(), "already": True}
        if not self._has_capacity():
            raise CallError(
                "busy", f"this box runs {self.sessions_in_use()} of {self.config.max_sessions} conversations"
            )
        call = await self._join(credentials, auto=False)
        self._acquire(call)
        self._reconcile()
        return call.describe()

    async def leave(self, room: str | None) -> dict[str, Any]:
        async with self._commands:
            return await self._leave_rooms(room)

    async def _leave_rooms(self, room: str | None) -> dict[str, Any]:
        targets = [c for c in self.calls if room in (None, c.name)]
        if not targets:
            raise CallError("bad_request", f"not in room {room!r}" if room else "not in any room")
        for call in targets:
            await self._leave(call, "asked to leave")
        return {"left": [c.name for c in targets]}

    # ----- joining and leaving ----------------------------------------------------------------------

    def _new_call(self, credentials: RoomCredentials, auto: bool) -> RoomCall:
        transport = self.transport_factory(credentials, self.rules)
        call = RoomCall(transport, auto=auto)
        transport.on_change.connect(self._reconcile)
        transport.on_status.connect(lambda status: self._status(call, status))
        transport.on_handback.connect(lambda identity: self._handback(call, identity))
        self.calls.append(call)
        return call

    async def _join(self, credentials: RoomCredentials, auto: bool) -> RoomCall:
        call = self._new_call(credentials, auto)
        try:
            await call.transport.join()
        except RoomError as exc:
            self.calls.remove(call)
            self._emit("error", call, message=str(exc))
            raise CallError("unauthorized" if exc.permanent else "unreachable", str(exc)) from None
        self._emit("joined", call)
        self._keep_running(call)
        return call

    def _keep_running(self, call: RoomCall) -> None:
        task = asyncio.get_running_loop().create_task(call.transport.run(), name=f"room-{call.name}")
        call.task = task

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None and call in self.calls:
                self._spawn(self._leave(call, f"failed: {t.exception()}"))

        task.add_done_callback(done)

    async def _leave(self, call: RoomCall, reason: str) -> None:
        if call not in self.calls:
            return
        self.calls.remove(call)
        self._release(call)
        await call.transport.leave()
        if call.task is not None:
            call.task.cancel()
        self._reconcile()
        self._emit("left", call, reason=reason)

    def _find(self, room: str | None) -> RoomCall | None:
        return next((c for c in self.calls if room is not None and c.name == room), None)

    # ----- sessions ---------------------------------------------------------------------------------

    def _has_capacity(self) -> bool:
        return self.sessions_in_use() < self.config.max_sessions or (self.device is None and self.primary_call is None)

    def _acquire(self, call: RoomCall) -> bool:
        """A session for a room's caller, if the box has one to give."""
        if self.device is None and self.primary_call is None:
            self._move_primary(call)
        elif self.sessions_in_use() < self.config.max_sessions:
            session = self.new_session()
            session.hold_mode(ModeOverride.CALL)
            self._follow_session(session)
            self._ports[id(session)] = SessionPort(session)
            call.session = session
        elif self.primary_call is None:
            self._move_primary(call)  # one conversation at a time: the call takes it, like a phone
        else:
            return False
        return True

    def _move_primary(self, call: RoomCall) -> None:
        self.primary.stop_speaking()
        self.primary.hold_mode(ModeOverride.CALL)  # no wake phrase for a caller; a fleet mute still holds
        call.session, call.primary = self.primary, True

    def _release(self, call: RoomCall) -> None:
        session, call.session = call.session, None
        call.caller = None
        if session is None:
            return
        session.announcements.clear()  # they were for this call's caller: never for the next one
        session.stop_speaking()
        if call.primary:
            call.primary = False
            self.primary.hold_mode(ModeOverride.CALL, False)
            if self.device is None:
                session.output.clear()  # nothing plays at home on a headless box: keep nothing for the next caller
        else:
            self._ports.pop(id(session), None)
            self._spawn(session.aclose())

    def _follow_session(self, session: VoiceSession) -> None:
        """Show a session's state and captions in whichever room it is talking in."""

        def state(value: SessionState) -> None:
            self._in_room_of(session, lambda room: room.publish_state(value.value))

        def heard(text: str, final: bool) -> None:
            if final:
                self._in_room_of(session, lambda room: room.publish_transcript(text, from_caller=True))

        def said(text: str) -> None:
            self._in_room_of(session, lambda room: room.publish_transcript(text, from_caller=False))

        session.on_state.connect(state)
        session.on_transcript.connect(heard)
        session.on_agent_text.connect(said)

    def _others(self, call: RoomCall, role: Role) -> list[str]:
        """Participants in `role`, leaving out this box itself: a second connection of it in the same
        room (under another identity) is never a caller or an operator to answer."""
        own = {c.transport.identity for c in self.calls}
        return [identity for identity in call.transport.with_role(role) if identity not in own]

    def _in_room_of(self, session: VoiceSession, action: Callable[[RoomTransport], None]) -> None:
        for call in self.calls:
            if call.session is session and (self._operator is None or self._operator[0] is not call):
                action(call.transport)

    # ----- the one place that decides ---------------------------------------------------------------

    def _reconcile(self) -> None:
        for call in self.calls:
            self._follow_caller(call)
        self._follow_operator()
        self._route()

    def _follow_caller(self, call: RoomCall) -> None:
        transport = call.transport
        if not transport.connected:
            return  # a dropped connection empties the room; wait for the rejoin before judging
        present = set(transport.participants)
        call.declined &= present
        call.handed_back &= present
        callers = [c for c in self._others(call, Role.CALLER) if c not in call.declined]
        if callers:
            call.last_caller_at = time.monotonic()
        if call.caller is not None and call.caller not in present:
            if time.monotonic() - transport.connected_at < CALLER_GRACE_S:
                return  # just back after an outage: the caller's app may be rejoining too
            self._emit("caller_left", call, identity=call.caller)
            call.caller = None
            if call.auto:
                self._release(call)  # stay reachable, give the session back
            else:
                self._spawn(self._leave(call, "the caller left"))
                return
        if call.caller is None and callers:
            if call.session is None and not self._acquire(call):
                call.declined.update(callers)
                self._emit("busy", call, identity=callers[0])
                self._spawn(self._announce_busy(call))
                return
            call.caller = callers[0]
            call.announcement = None
            self._emit("caller_joined", call, identity=call.caller)

    def _follow_operator(self) -> None:
        found: tuple[RoomCall, str] | None = None
        for call in self.calls:
            operators = [o for o in self._others(call, Role.OPERATOR) if o not in call.handed_back]
            if operators and call.transport.connected:
                found = (call, operators[0])
                break
        before = self._operator
        if found == before:
            return
        self._operator = found
        if before is not None:
            self._emit("operator_left", before[0], identity=before[1])
        if found is not None:
            call, identity = found
            if call.session is not None:
                call.session.stop_speaking()
            if self.device is not None and self.primary_call is None:
                self.primary.stop_speaking()
            self._intercom.clear()
            self._emit("operator_joined", call, identity=identity)

    def _route(self) -> None:
        operator = self._operator
        if self.device is not None:
            if operator is not None:
                target: Any = self._intercom.device_end
            elif self.primary_call is None:
                target = self._primary_port
            else:
                target = None
            if self.device.peer is not target:
                self.device.attach(target)
        for call in self.calls:
            if operator is not None and operator[0] is call:
                call.transport.attach(self._intercom.room_end if self.device else None, operator[1])
            elif call.session is not None:
                call.transport.attach(self._ports[id(call.session)], call.caller)
            else:
                call.transport.attach(call.announcement, None)

    # ----- events from the rooms --------------------------------------------------------------------

    def _handback(self, call: RoomCall, identity: str) -> None:
        if call.transport.participants.get(identity) is Role.OPERATOR:
            call.handed_back.add(identity)
            self._reconcile()

    def _status(self, call: RoomCall, status: RoomStatus) -> None:
        if status.state is RoomState.CONNECTING:
            return
        self._emit("connection", call, state=str(status))
        self._reconcile()

    async def _announce_busy(self, call: RoomCall) -> None:
        if self.synthesize is None:
            return
        try:
            samples = await self.synthesize(BUSY_LINE)
        except Exception as exc:
            log.warning("room %s: could not say the busy line: %s", call.name, exc)
            return
        if call in self.calls and call.session is None:
            call.announcement = Announcement(samples)
            self._route()

    async def _tick(self) -> None:
        """Leave rooms where nobody has been to talk to for `idle_timeout_s`."""
        limit = self.config.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4) if limit else 1.0)
            self._reconcile()  # decisions that wait on time (a caller's grace after a rejoin)
            if not limit:
                continue
            now = time.monotonic()
            for call in list(self.calls):
                if self._others(call, Role.CALLER):
                    call.last_caller_at = now
                elif not call.auto and now - call.last_caller_at > limit:
                    await self._leave(call, f"no caller for {limit:g} s")

    # ----- helpers ----------------------------------------------------------------------------------

    def _emit(self, event: str, call: RoomCall, **fields: Any) -> None:
        self.on_event.emit(CallEvent(event, call.name, fields))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)
