"""A participant on the other side of a call: speaks from samples, records what it hears.

`appliance bench --livekit` and the tests use it as the remote caller (or operator):
it publishes a continuous 48 kHz track (speech when told to, silence otherwise, as
a phone would) and records the device's track with the arrival time of each frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np

from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.audio.resample import StreamResampler
from appliance.transports.livekit_room import ROOM_RATE
from appliance.transports.ports import AudioPipe

_BLOCK = ENGINE_RATE // 100


def mint_token(
    api_key: str, api_secret: str, room: str, identity: str, attributes: dict[str, str] | None = None
) -> str:
    from livekit import api

    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if attributes:
        token = token.with_attributes(attributes)
    return token.to_jwt()


class RoomPeer:
    def __init__(self, url: str, token: str, listen_to: str) -> None:
        self.url = url
        self.token = token
        self.listen_to = listen_to
        self.heard: list[tuple[float, Int16Array]] = []
        """(arrival time.monotonic(), 16 kHz samples) for each frame from `listen_to`."""
        self.room: Any = None
        self.captions: list[str] = []
        """Text `listen_to` published on the `lk.transcription` stream (what it heard and what it said)."""
        self.agent_states: list[str] = []
        """Each `lk.agent.state` that `listen_to` went through."""
        self._outgoing = AudioPipe(max_s=120)
        self._tasks: list[asyncio.Task[None]] = []
        self._source: Any = None

    async def join(self) -> None:
        from livekit import rtc

        self.room = rtc.Room()
        self.room.on("track_subscribed", self._subscribed)
        self.room.on("participant_attributes_changed", self._attributes_changed)
        self.room.register_text_stream_handler("lk.transcription", self._caption)
        await self.room.connect(self.url, self.token)
        for participant in self.room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._subscribed(publication.track, publication, participant)
        self._source = rtc.AudioSource(ROOM_RATE, 1, queue_size_ms=50)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._tasks.append(asyncio.get_running_loop().create_task(self._send()))

    def say(self, samples: Int16Array) -> float:
        """Queue 16 kHz speech; returns when (time.monotonic()) its last sample leaves."""
        queued = self._outgoing.queued_s
        self._outgoing.write(samples)
        backlog = self._source.queued_duration if self._source is not None else 0.0
        return time.monotonic() + backlog + queued + len(samples) / ENGINE_RATE

    def recording(self, since: float = 0.0) -> Int16Array:
        blocks = [samples for at, samples in self.heard if at >= since]
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)

    def first_audible(self, since: float, level: int = 330) -> float | None:
        """Arrival time of the first frame after `since` with a sample above `level`."""
        for at, samples in self.heard:
            if at >= since and np.any(np.abs(samples.astype(np.int32)) > level):
                return at
        return None

    async def rpc(self, destination: str, method: str, payload: str = "") -> str:
        result: str = await self.room.local_participant.perform_rpc(
            destination_identity=destination, method=method, payload=payload
        )
        return result

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.room is not None:
            with contextlib.suppress(Exception):
                await self.room.disconnect()

    def _attributes_changed(self, changed: dict[str, str], participant: Any) -> None:
        if participant.identity == self.listen_to and "lk.agent.state" in changed:
            self.agent_states.append(changed["lk.agent.state"])

    def _caption(self, reader: Any, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            if identity == self.listen_to:
                self.captions.append(text)

        self._tasks.append(asyncio.get_running_loop().create_task(read()))

    def _subscribed(self, track: Any, _publication: Any, participant: Any) -> None:
        from livekit import rtc

        if participant.identity == self.listen_to and track.kind == rtc.TrackKind.KIND_AUDIO:
            self._tasks.append(asyncio.get_running_loop().create_task(self._record(track)))

    async def _record(self, track: Any) -> None:
        from livekit import rtc

        stream = rtc.AudioStream(track, sample_rate=ROOM_RATE, num_channels=1)
        resampler = StreamResampler(ROOM_RATE, ENGINE_RATE)
        async for event in stream:
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            self.heard.append((time.monotonic(), resampler.push(samples)))

    async def _send(self) -> None:
        from livekit import rtc

        resampler = StreamResampler(ENGINE_RATE, ROOM_RATE)
        while True:
            samples = resampler.push(self._outgoing.read(_BLOCK))
            if len(samples):
                await self._source.capture_frame(rtc.AudioFrame(samples.tobytes(), ROOM_RATE, 1, len(samples)))
