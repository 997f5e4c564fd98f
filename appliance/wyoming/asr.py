"""The speech-to-text service: one client stream in, one transcript out, ready when the stream ends.

A Wyoming client (Home Assistant's pipeline) sends audio until its own voice detector hears the end of the
command, some 0.7 s of silence later. Transcribing only then would add the whole Whisper run to every
request. So, as on the device, the transcript is started in the silence, once `speculate_after_s` of it
has passed, and used if no speech came after it; further speech cancels it and the end starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from appliance.audio.frames import Int16Array
from appliance.config import VadConfig
from appliance.providers.base import STT, VAD, Transcript
from appliance.wyoming.speech_track import SpeechTrack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AsrOptions:
    language: str | None
    vad: VadConfig
    speculate_after_s: float = 0.3
    """Silence after speech that starts the transcript (the device's `endpointing.min_silence_ms`)."""


class Transcription:
    def __init__(self, stt: STT, vad: VAD, options: AsrOptions, language: str | None = None) -> None:
        self._stt = stt
        self._options = options
        self._language = language or options.language
        self._track = SpeechTrack(vad, options.vad)
        self._early: asyncio.Task[Transcript] | None = None
        self._early_until = 0.0
        """The last voiced time the early transcript covers."""
        self.used_early = False

    async def push(self, samples: Int16Array) -> None:
        track = self._track
        await track.push(samples)
        if track.speaking and self._early is not None:
            self._cancel_early()  # the user went on: what was transcribed is not the whole command
        elif (
            not track.speaking
            and track.heard_speech
            and self._early is None
            and track.seconds - track.last_voiced >= self._options.speculate_after_s
        ):
            self._early_until = track.last_voiced
            self._early = asyncio.get_running_loop().create_task(
                self._transcribe(track.audio()), name="wyoming-early-stt"
            )
            # Its failure is not this request's (the end is transcribed again): seen here, not logged as lost.
            self._early.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def finish(self, tail: Int16Array) -> Transcript:
        """The transcript of the whole stream (its end is in `tail`)."""
        await self._track.push(tail)
        early = self._early
        if early is not None and not self._track.speaking and self._track.last_voiced <= self._early_until:
            with contextlib.suppress(Exception):
                transcript = await early
                self.used_early = True
                return transcript
        self._cancel_early()
        return await self._transcribe(self._track.audio())

    def _cancel_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None

    async def _transcribe(self, audio: Int16Array) -> Transcript:
        return await self._stt.transcribe(audio, self._language)

    async def aclose(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.cancel()
            with contextlib.suppress(BaseException):
                await early
