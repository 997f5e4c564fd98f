"""A LiveKit room as a transport: who is there, one participant's audio in, the agent's voice out.

The device joins as a participant (`livekit` Python SDK), publishes one audio track
at 48 kHz and listens to one remote participant at a time (the caller, or an
operator while one has taken over). The agent's 16 kHz voice is converted to 48 kHz
with soxr at this edge; what the caller says arrives at 16 kHz from the SDK's own
(WebRTC) resampler. A dropped connection is rejoined with backoff; a join has a
timeout and fails with one clear line.

What the room's audio is for (a conversation, an intercom, a 'busy' line) is the
port attached to it; who to listen to is decided by `calls/`, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from appliance.aio import Backoff, TaskSet
from appliance.audio.frames import ENGINE_RATE, FrameSplitter
from appliance.audio.resample import StreamResampler
from appliance.config import redact_text
from appliance.emitter import Emitter
from appliance.transports.livekit_auth import RoomConfigError, RoomCredentials
from appliance.transports.ports import AudioPort
from appliance.transports.status import RoomState, RoomStatus

log = logging.getLogger(__name__)

ROOM_RATE = 48_000
"""What WebRTC's Opus runs at: the published track is 48 kHz."""
_BLOCK_16K = ENGINE_RATE // 100  # 10 ms, what WebRTC moves per packet
AGENT_STATE = "lk.agent.state"
TRANSCRIPTION_TOPIC = "lk.transcription"
HANDBACK_METHOD = "handback"
"""RPC an operator calls to give the conversation back to the agent."""
TEARDOWN_S = 3.0
"""How long leaving may wait for the SDK's streams and tasks to end."""


class Role(StrEnum):
    CALLER = "caller"
    OPERATOR = "operator"
    AGENT = "agent"
    OTHER = "other"


@dataclass(frozen=True)
class RoomRules:
    """Who is who in a room, and how patient to be."""

    caller: str | None = None
    operator_prefix: str = "operator-"
    operator_role: str = "operator"
    connect_timeout_s: float = 10.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 15.0
    output_queue_ms: int = 100

    def role_of(self, identity: str, kind: int, attributes: dict[str, str]) -> Role:
        from livekit import rtc

        if kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return Role.AGENT
        if (self.operator_prefix and identity.startswith(self.operator_prefix)) or attributes.get(
            "role"
        ) == self.operator_role:
            return Role.OPERATOR
        if self.caller is not None and identity != self.caller:
            return Role.OTHER
        return Role.CALLER


class RoomError(RuntimeError):
    """Joining or staying in a room failed; one line, never the token (it goes to events, replies and
    the log). `permanent`: retrying the same way will not help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(redact_text(message))
        self.permanent = permanent


class RoomTransport:
    def __init__(self, credentials: RoomCredentials, rules: RoomRules | None = None) -> None:
        self.credentials = credentials
        self.rules = rules or RoomRules()
        self.name = credentials.room or "?"
        self.identity = credentials.identity
        """Who this device is in the room: as the server admitted it (read back after each join)."""
        self.status = RoomStatus(RoomState.CLOSED)
        self.peer: AudioPort | None = None
        self.listen_to: str | None = None
        """Identity whose audio goes to the peer (set by whoever runs the call)."""
        self.participants: dict[str, Role] = {}
        self.on_status: Emitter[[RoomStatus]] = Emitter("room status")
        self.on_change: Emitter[[]] = Emitter("change")
        """Someone joined, left, changed role, published or unpublished a track."""
        self.on_handback: Emitter[[str]] = Emitter("handback")
        self._room: Any = None
        self._source: Any = None
        self._dropped = asyncio.Event()
        self._tasks = TaskSet(f"room {self.name}")
        self._reader: tuple[str, asyncio.Task[None]] | None = None
        self._leaving = False
        self.connected_at = 0.0
        """time.monotonic() of the last (re)join."""
        self._voice_sid = ""
        self._attributes_refused = False

    # ----- who is here ---------------------------------------------------------------------------

    def with_role(self, role: Role) -> list[str]:
        return [identity for identity, r in self.participants.items() if r is role]

    @property
    def connected(self) -> bool:
        return self.status.state is RoomState.CONNECTED

    # ----- what it talks to ----------------------------------------------------------------------

    def attach(self, peer: AudioPort | None, listen_to: str | None) -> None:
        if peer is not self.peer:
            if self.peer is not None:
                self.peer.stop_listeners.disconnect(self._flush)
            self.peer = peer
            if peer is not None:
                peer.stop_listeners.connect(self._flush)
            self._flush()
        if listen_to != self.listen_to:
            self.listen_to = listen_to
            self._listen()

    def _reconnected(self) -> None:
        self.connected_at = time.monotonic()
        self._set_status(RoomStatus(RoomState.CONNECTED))

    def _flush(self) -> None:
        if self._source is not None:
            self._source.clear_queue()

    # ----- joining, staying, leaving -------------------------------------------------------------

    async def join(self) -> None:
        """Connect once; raises RoomError (with a timeout) so the one who asked hears why."""
        await self._connect()

    async def run(self) -> None:
        """Stay in the room until `leave()`: serve the connection made by `join`, rejoin when it drops.

        Returns when left, or raises RoomError when the server refuses us for good.
        """
        backoff = Backoff(self.rules.retry_initial_s, self.rules.retry_max_s)
        while not self._leaving:
            if self._room is None:
                try:
                    await self._connect()
                except RoomError as exc:
                    if exc.permanent:
                        self._set_status(RoomStatus(RoomState.FAILED, str(exc)))
                        raise
                    self._set_status(RoomStatus(RoomState.UNAVAILABLE, str(exc)))
                    delay = backoff.next()
                    log.warning("room %s: %s (retrying in %.1f s)", self.name, exc, delay)
                    await asyncio.sleep(delay)
                    continue
            backoff.reset()
            await self._dropped.wait()
            if not self._leaving:
                self._set_status(RoomStatus(RoomState.LOST))
                log.warning("room %s: connection lost; rejoining", self.name)
                await self._teardown()

    async def leave(self) -> None:
        self._leaving = True
        self._dropped.set()
        await self._teardown()
        self._set_status(RoomStatus(RoomState.CLOSED))

    async def _connect(self) -> None:
        from livekit import rtc

        try:
            token = self.credentials.token_for_attempt()
        except RoomConfigError as exc:
            raise RoomError(str(exc), permanent=True) from None
        room = rtc.Room()
        self._dropped = asyncio.Event()
        room.on("participant_connected", lambda p: self._participant_changed(p))
        room.on("participant_attributes_changed", lambda _changed, p: self._participant_changed(p))
        room.on("participant_disconnected", self._participant_left)
        room.on("track_subscribed", lambda _track, _pub, _p: self._listen())
        room.on("track_unsubscribed", lambda _track, _pub, _p: self._listen())
        room.on("disconnected", lambda _reason: self._dropped.set())
        room.on("reconnecting", lambda: self._set_status(RoomStatus(RoomState.RECONNECTING)))
        room.on("reconnected", self._reconnected)
        self._set_status(RoomStatus(RoomState.CONNECTING))
        timeout = self.rules.connect_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await room.connect(self.credentials.url, token, rtc.RoomOptions(auto_subscribe=True))
        except TimeoutError:
            await _disconnect_quietly(room)
            raise RoomError(f"joining {self.credentials.url} timed out after {timeout:g} s") from None
        except rtc.ConnectError as exc:
            await _disconnect_quietly(room)
            message = str(exc).removeprefix("engine: ").removeprefix("signal failure: ")
            refused = any(word in message for word in ("401", "403", "Unauthorized", "invalid", "permission"))
            raise RoomError(f"cannot join {self.credentials.url}: {message}", permanent=refused) from None
        self._room = room
        self.name = room.name or self.name
        # The server's word, not config's: only it knows whom the token admitted. Anything else would
        # take the device's own earlier connection for a caller, or a caller for the device.
        self.identity = room.local_participant.identity or self.identity
        room.local_participant.register_rpc_method(HANDBACK_METHOD, self._handback)
        for participant in room.remote_participants.values():
            self._participant_changed(participant, notify=False)
        self._source = rtc.AudioSource(ROOM_RATE, 1, queue_size_ms=self.rules.output_queue_ms)
        track = rtc.LocalAudioTrack.create_audio_track("appliance-voice", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        try:
            async with asyncio.timeout(timeout):
                publication = await room.local_participant.publish_track(track, options)
                self._voice_sid = publication.sid
        except (TimeoutError, Exception) as exc:
            await self._teardown()
            raise RoomError(f"publishing the agent's voice in {self.name} failed: {exc or 'timed out'}") from None
        self._spawn(self._speak(), "room-speak")
        self.connected_at = time.monotonic()
        self._set_status(RoomStatus(RoomState.CONNECTED))
        log.info("room %s: joined as %s", self.name, self.identity)
        self._listen()
        self._changed()

    async def _teardown(self) -> None:
        # Bounded, and without swallowing a cancellation aimed at us (a stop has its own deadline).
        await self._tasks.aclose(TEARDOWN_S)
        self._reader = None
        room, self._room = self._room, None
        source, self._source = self._source, None
        if room is not None:
            await _disconnect_quietly(room)
        if source is not None:
            with contextlib.suppress(Exception):
                await source.aclose()
        if self.participants:
            self.participants = {}
            self._changed()

    # ----- participants ---------------------------------------------------------------------------

    def _participant_changed(self, participant: Any, notify: bool = True) -> None:
        if participant.identity == self.identity:
            return  # our own earlier connection, still listed while the server replaces it after a rejoin
        role = self.rules.role_of(participant.identity, int(participant.kind), dict(participant.attributes))
        if self.participants.get(participant.identity) is not role:
            self.participants[participant.identity] = role
            if notify:
                self._changed()

    def _participant_left(self, participant: Any) -> None:
        if self.participants.pop(participant.identity, None) is not None:
            self._changed()
        self._listen()

    def _changed(self) -> None:
        self.on_change.emit()

    async def _handback(self, data: Any) -> str:
        caller = getattr(data, "caller_identity", "")
        self.on_handback.emit(caller)
        return "ok"

    # ----- audio in: the one we listen to --------------------------------------------------------

    def _listen(self) -> None:
        """Read the audio track of `listen_to`, and only that one."""
        target = self.listen_to
        track = self._audio_track_of(target) if target else None
        current = self._reader
        if current is not None and (track is None or current[0] != track.sid):
            current[1].cancel()
            self._reader = None
        if track is not None and self._reader is None:
            task = self._spawn(self._hear(track), f"room-hear-{target}")
            self._reader = (track.sid, task)

    def _audio_track_of(self, identity: str) -> Any:
        from livekit import rtc

        room = self._room
        participant = room.remote_participants.get(identity) if room is not None else None
        if participant is None:
            return None
        for publication in participant.track_publications.values():
            if publication.kind == rtc.TrackKind.KIND_AUDIO and publication.track is not None:
                return publication.track
        return None

    async def _hear(self, track: Any) -> None:
        from livekit import rtc

        # The SDK converts to 16 kHz natively (WebRTC's resampler) and hands over 20 ms at a time:
        # half the per-frame crossings of its default 10 ms, which is most of a quiet call's CPU.
        stream = rtc.AudioStream(track, sample_rate=ENGINE_RATE, num_channels=1, frame_size_ms=20)
        splitter = FrameSplitter(512)
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16)
                for frame in splitter.push(samples):
                    peer = self.peer
                    if peer is not None:
                        await peer.feed(frame)
        finally:
            # The SDK's aclose waits for an end-of-stream event that may never come once the room is
            # gone; a stop must not hang on it.
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(stream.aclose(), TEARDOWN_S)

    # ----- audio out: the agent's voice -----------------------------------------------------------

    async def _speak(self) -> None:
        """Pull 10 ms at a time and publish it; the source's small queue paces this loop.

        Silence is not sent sample by sample: while nothing is to be heard the loop just
        keeps time, which keeps an idle call cheap.
        """
        from livekit import rtc

        resampler = StreamResampler(ENGINE_RATE, ROOM_RATE)
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            source = self._source
            if source is None:
                return
            peer = self.peer
            block = peer.pull(_BLOCK_16K, source.queued_duration) if peer else None
            if block is None or not block.any():
                if source.queued_duration == 0:
                    next_tick = max(next_tick + _BLOCK_16K / ENGINE_RATE, loop.time())
                    await asyncio.sleep(max(0.0, next_tick - loop.time()))
                    continue
                block = np.zeros(_BLOCK_16K, dtype=np.int16)
            samples = resampler.push(block)
            if len(samples):
                frame = rtc.AudioFrame(samples.tobytes(), ROOM_RATE, 1, len(samples))
                await source.capture_frame(frame)
            next_tick = loop.time()

    # ----- what LiveKit's own frontends show --------------------------------------------------------

    def publish_state(self, state: str) -> None:
        """The agent's state as LiveKit's frontends read it (the `lk.agent.state` attribute)."""
        room = self._room
        if room is None or not self.connected or self._attributes_refused:
            return

        async def publish() -> None:
            try:
                await room.local_participant.set_attributes({AGENT_STATE: state})
            except Exception as exc:  # a token without canUpdateOwnMetadata: say so once, then stop trying
                self._attributes_refused = True
                log.info("room %s: cannot show the agent's state (%s)", self.name, exc)

        self._spawn(publish(), "room-state")

    def publish_transcript(self, text: str, from_caller: bool) -> None:
        """A caption on the `lk.transcription` text stream: what the caller said, or what the agent says."""
        room = self._room
        if room is None or not self.connected or not text:
            return
        track = self._reader[0] if from_caller and self._reader else self._voice_sid
        attributes = {"lk.transcription_final": "true", "lk.segment_id": f"seg-{uuid.uuid4().hex[:12]}"}
        if track:
            attributes["lk.transcribed_track_id"] = track
        sent = room.local_participant.send_text(text, topic=TRANSCRIPTION_TOPIC, attributes=attributes)
        self._spawn(sent, "room-caption")

    # ----- helpers ----------------------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    def _set_status(self, status: RoomStatus) -> None:
        self.status = status
        self.on_status.emit(status)


async def _disconnect_quietly(room: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(room.disconnect(), 5.0)
