"""The call manager's decisions: where each conversation is, who it hears, and when the box is busy.

The rooms here are stand-ins that only hold participants (the real server is in
tests/integration/test_livekit.py); what is checked is the routing that follows.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from appliance.agents.agent import Agent
from appliance.audio.frames import ENGINE_RATE
from appliance.audio.playback import PlaybackQueue
from appliance.calls.events import CallEvent
from appliance.calls.manager import CallError, CallManager
from appliance.config import ActivationConfig, LiveKitConfig
from appliance.emitter import Emitter
from appliance.transports.device import DeviceOptions, DeviceTransport
from appliance.transports.livekit_auth import RoomCredentials
from appliance.transports.livekit_room import Role, RoomRules
from appliance.transports.ports import Announcement, AudioPort, PipeEnd, SessionPort
from appliance.transports.status import RoomState, RoomStatus
from appliance.voice.activation import ActivationMode
from appliance.voice.session import VoiceSession
from appliance.voice.state import SessionOptions
from appliance.voice.turn_state import Providers
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD


class StandInRoom:
    """Holds participants and a status, as RoomTransport does, without a server."""

    def __init__(self, credentials: RoomCredentials, rules: RoomRules) -> None:
        self.name = credentials.room or "?"
        self.identity = credentials.identity
        self.rules = rules
        self.status = RoomStatus(RoomState.CLOSED)
        self.connected_at = 0.0
        self.participants: dict[str, Role] = {}
        self.peer: AudioPort | None = None
        self.listen_to: str | None = None
        self.on_change: Emitter[[]] = Emitter("change")
        self.on_status: Emitter[[RoomStatus]] = Emitter("status")
        self.on_handback: Emitter[[str]] = Emitter("handback")
        self.left = False
        self.states: list[str] = []
        self.captions: list[tuple[str, bool]] = []

    @property
    def connected(self) -> bool:
        return self.status.state is RoomState.CONNECTED

    def with_role(self, role: Role) -> list[str]:
        return [i for i, r in self.participants.items() if r is role]

    def attach(self, peer: AudioPort | None, listen_to: str | None) -> None:
        self.peer, self.listen_to = peer, listen_to

    async def join(self) -> None:
        await asyncio.sleep(0.01)  # a join takes a while: other commands may arrive meanwhile
        self.connected_at = time.monotonic() - 60
        self.status = RoomStatus(RoomState.CONNECTED)

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def leave(self) -> None:
        self.left = True
        self.status = RoomStatus(RoomState.CLOSED)

    def publish_state(self, state: str) -> None:
        self.states.append(state)

    def publish_transcript(self, text: str, from_caller: bool) -> None:
        self.captions.append((text, from_caller))

    def arrive(self, identity: str, role: Role = Role.CALLER) -> None:
        self.participants[identity] = role
        self.on_change.emit()

    def depart(self, identity: str) -> None:
        del self.participants[identity]
        self.on_change.emit()


def session(mode: ActivationMode = ActivationMode.WAKE) -> VoiceSession:
    providers = Providers(FakeVAD(), FakeSTT(), FakeLLM(), FakeTTS())
    options = SessionOptions(activation=ActivationConfig(mode=mode))
    return VoiceSession(providers, Agent(instructions="Be brief."), PlaybackQueue(ENGINE_RATE), options)


class Box:
    def __init__(self, with_device: bool, **config: Any) -> None:
        self.primary = session()
        self.device = DeviceTransport(self.primary, DeviceOptions(echo_cancellation=False)) if with_device else None
        self.rooms: list[StandInRoom] = []
        self.events: list[CallEvent] = []
        self.said: list[str] = []

        def factory(credentials: RoomCredentials, rules: RoomRules) -> Any:
            room = StandInRoom(credentials, rules)
            self.rooms.append(room)
            return room

        async def synthesize(text: str) -> np.ndarray:
            self.said.append(text)
            return np.full(1600, 1000, dtype=np.int16)

        self.calls = CallManager(
            LiveKitConfig(**config),
            self.primary,
            self.device,
            new_session=lambda: session(ActivationMode.ALWAYS),
            synthesize=synthesize,
            transport_factory=factory,
        )
        self.calls.on_event.connect(self.events.append)

    def room(self, name: str) -> StandInRoom:
        return next(r for r in self.rooms if r.name == name)

    def kinds(self) -> list[str]:
        return [e.event for e in self.events]


def credentials(room: str) -> RoomCredentials:
    return RoomCredentials("ws://lk", room, "box", token="t")


async def test_a_headless_box_serves_a_caller_in_its_room_and_stays_when_they_leave() -> None:
    box = Box(with_device=False)
    await box.calls.start(credentials("kitchen"))
    room = box.room("kitchen")
    assert room.peer is None and box.calls.sessions_in_use() == 0
    room.arrive("alice")
    assert isinstance(room.peer, SessionPort) and room.peer.session is box.primary
    assert room.listen_to == "alice" and box.primary.activation.mode is ActivationMode.ALWAYS
    room.depart("alice")
    assert room.peer is None and not room.left and box.primary.activation.mode is ActivationMode.WAKE
    assert box.kinds()[-2:] == ["caller_joined", "caller_left"]
    await box.calls.aclose()


async def test_handoff_moves_the_device_conversation_and_brings_it_back() -> None:
    box = Box(with_device=True)
    await box.calls.start(None)
    assert box.device is not None and isinstance(box.device.peer, SessionPort)
    result = await box.calls.handoff_to_room(credentials("hall"))
    room = box.room("hall")
    assert result["room"] == "hall" and result["conversation"] == "device"
    assert box.device.peer is None  # the microphone no longer feeds the conversation
    assert isinstance(room.peer, SessionPort) and room.peer.session is box.primary
    room.arrive("bob")
    assert room.listen_to == "bob"
    again = await box.calls.handoff_to_room(credentials("hall"))
    assert again["already"] is True
    with pytest.raises(CallError) as busy:
        await box.calls.handoff_to_room(credentials("porch"))
    assert busy.value.code == "busy"
    await box.calls.handoff_to_local()
    assert isinstance(box.device.peer, SessionPort) and box.device.peer.session is box.primary
    assert room.left and box.primary.activation.mode is ActivationMode.WAKE
    await box.calls.aclose()


async def test_beyond_max_sessions_a_caller_hears_the_busy_line_and_a_dispatch_is_refused() -> None:
    box = Box(with_device=True, max_sessions=1)
    await box.calls.start(credentials("kitchen"))
    await box.calls.handoff_to_room(credentials("hall"))
    kitchen = box.room("kitchen")
    kitchen.arrive("carol")
    assert "busy" in box.kinds()
    for _ in range(5):
        await asyncio.sleep(0)
    assert box.said and isinstance(kitchen.peer, Announcement)
    assert kitchen.listen_to is None and box.calls.primary_call is not None and box.calls.primary_call.name == "hall"
    with pytest.raises(CallError) as busy:
        await box.calls.join(credentials("porch"))
    assert busy.value.code == "busy" and "1 of 1" in str(busy.value)
    await box.calls.aclose()


async def test_with_two_sessions_a_dispatch_gets_a_conversation_of_its_own() -> None:
    box = Box(with_device=True, max_sessions=2)
    await box.calls.start(None)
    result = await box.calls.join(credentials("porch"))
    porch = box.room("porch")
    assert result["conversation"] == "own" and isinstance(porch.peer, SessionPort)
    assert porch.peer.session is not box.primary
    assert box.device is not None and isinstance(box.device.peer, SessionPort)  # the device keeps its own
    assert box.calls.sessions_in_use() == 2
    with pytest.raises(CallError):
        await box.calls.join(credentials("attic"))
    await box.calls.aclose()


async def test_an_operator_takes_the_device_over_as_an_intercom_until_handback() -> None:
    box = Box(with_device=True)
    await box.calls.start(credentials("kitchen"))
    kitchen = box.room("kitchen")
    kitchen.arrive("dave")  # a caller takes the box's one conversation into the room
    assert isinstance(kitchen.peer, SessionPort)
    kitchen.arrive("operator-1", Role.OPERATOR)
    assert box.device is not None and isinstance(box.device.peer, PipeEnd)
    assert isinstance(kitchen.peer, PipeEnd) and kitchen.listen_to == "operator-1"
    kitchen.on_handback.emit("operator-1")
    assert isinstance(kitchen.peer, SessionPort) and kitchen.listen_to == "dave"
    assert box.device.peer is None  # the conversation is still in the room
    assert box.kinds().count("operator_joined") == 1 and "operator_left" in box.kinds()
    await box.calls.aclose()


async def test_a_room_without_a_caller_is_left_after_the_idle_timeout() -> None:
    box = Box(with_device=True, idle_timeout_s=0.3)
    await box.calls.start(None)
    await box.calls.handoff_to_room(credentials("hall"))
    await asyncio.sleep(0.8)
    assert box.room("hall").left and box.calls.calls == []
    assert box.device is not None and isinstance(box.device.peer, SessionPort)
    assert any(e.event == "left" and "no caller" in e.details["reason"] for e in box.events)
    await box.calls.aclose()


async def test_after_a_rejoin_a_missing_caller_gets_a_grace_period() -> None:
    box = Box(with_device=True)
    await box.calls.start(None)
    await box.calls.handoff_to_room(credentials("hall"))
    hall = box.room("hall")
    hall.arrive("erin")
    hall.connected_at = time.monotonic()  # just rejoined after an outage
    hall.depart("erin")
    assert not hall.left and "caller_left" not in box.kinds()
    hall.connected_at = time.monotonic() - 60
    hall.arrive("someone-else", Role.OTHER)
    await asyncio.sleep(0)
    assert "caller_left" in box.kinds()
    await box.calls.aclose()


async def test_two_handoffs_at_once_move_the_conversation_once() -> None:
    box = Box(with_device=True)
    await box.calls.start(None)
    results = await asyncio.gather(
        box.calls.handoff_to_room(credentials("hall")),
        box.calls.handoff_to_room(credentials("porch")),
        return_exceptions=True,
    )
    assert results[0]["room"] == "hall"  # type: ignore[index]
    assert isinstance(results[1], CallError) and results[1].code == "busy"
    assert [r.name for r in box.rooms] == ["hall"]
    await box.calls.aclose()


async def test_the_box_never_takes_its_own_other_connection_for_a_caller() -> None:
    """Two rooms' connections of one box under two identities (a token named it): in one room, the other
    connection is the box itself, not someone to answer or to tell it is busy."""
    box = Box(with_device=False, max_sessions=2)
    await box.calls.start(credentials("kitchen"))
    await box.calls.join(RoomCredentials("ws://lk", "porch", "box-7", token="t"))
    kitchen = box.room("kitchen")
    kitchen.arrive("box-7")
    assert kitchen.listen_to is None and "busy" not in box.kinds() and "caller_joined" not in box.kinds()
    kitchen.arrive("alice")
    assert kitchen.listen_to == "alice" and box.calls.snapshot()[0]["caller"] == "alice"
    await box.calls.aclose()
