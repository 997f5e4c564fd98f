"""The device as a Home Assistant satellite: a second Wyoming listener Home Assistant connects to.

`describe` is answered with an `info` holding `satellite`, so Home Assistant's Wyoming integration adds
the device as an Assist satellite. Once Home Assistant sends `run-satellite`, each request the device hears
after its own wake phrase (its own activation, with echo cancellation) goes to Home Assistant: `run-pipeline`
(speech-to-text to text-to-speech), the utterance as `audio-start`/`audio-chunk`/`audio-stop`, and the spoken
answer Home Assistant sends back (`audio-start`/`audio-chunk`/`audio-stop`) is played through the device's
own speaker; `played` follows once it has played out.

The session hands over an utterance its endpointer has ended, not a live stream: the device's own
endpointing decides when the user is done, as it does for its local pipeline. The wake phrase the utterance
starts with is cut off first (`cut`), as a satellite that wakes on its own streams only what follows it.
Audio Home Assistant sends outside a pipeline is an announcement (`assist_satellite.announce`), played
like the device's own; a timer Home Assistant set for this satellite rings on the device when it finishes.
With a fallback (`activation.pipeline = "auto"`), a request Home Assistant is not there for, fails, or
does not start answering within the deadline is answered by the device itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk as WyomingChunk
from wyoming.audio import AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe, Info, Satellite
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.snd import Played
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted
from wyoming.tts import Synthesize

from appliance import __version__
from appliance.audio.frames import ENGINE_RATE, AudioChunk, Int16Array
from appliance.voice.turn_record import TurnRecord
from appliance.wyoming.announce import Announcement
from appliance.wyoming.audio_in import AudioFormatError, AudioIn, PcmFormat
from appliance.wyoming.describe import ATTRIBUTION, wake_model_name
from appliance.wyoming.wire import MAX_LINE, BadEvent, BrokenStream, read_event

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 1024
"""Samples per audio-chunk sent (64 ms at 16 kHz), as satellites stream their microphone."""
LEADING_SILENCE_S = 0.3
"""Silence sent before the utterance (see `_send_request`)."""
MAX_ANNOUNCEMENT_S = 300.0
"""The longest announcement kept (16 kHz: 9.6 MB); longer audio is refused with an error event."""


class PipelineFailed(Exception):
    """Home Assistant did not answer the request (one line, kept in the turn record)."""


class _HomeAssistant:
    """One connected Home Assistant: its writer, whether it has asked for pipelines, and the events of the
    pipeline in progress."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.running = False
        """`run-satellite` received (and no `pause-satellite` since): requests may go to it."""
        self.pipeline: asyncio.Queue[Event | None] | None = None
        self.owes_played = False
        self.announcing: AudioIn | None = None
        """Audio sent outside a pipeline (Home Assistant's announce) is coming in."""
        self.announced: list[Int16Array] = []
        self.announced_samples = 0
        self.announcement_refused = False
        """The announcement coming in was refused: its remaining chunks and audio-stop are dropped."""
        self.timers: dict[str, str | None] = {}
        """Home Assistant's timers on this satellite (its own intents set them): id -> the name the user gave."""

    async def write(self, event: Event) -> None:
        await async_write_event(event, self.writer)


class SatelliteServer:
    def __init__(
        self,
        host: str,
        port: int,
        wake_phrase: str,
        *,
        timeout_s: float,
        fallback: bool,
        name: str = "appliance",
        announce: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.wake_phrase = wake_phrase
        self.timeout_s = timeout_s
        self.fallback = fallback
        """True: a request Home Assistant does not answer is the device's own (False: it fails, said once)."""
        self.name = name
        self.announce = announce
        """Announce over mDNS (as `<name>-satellite`, beside the services' `<name>`) so Home Assistant offers
        to add it."""
        self._announcement = Announcement("satellite")
        self.cut: Callable[[Int16Array], Awaitable[Int16Array]] | None = None
        """What of an utterance to send (`voice.remote.wake_phrase_cutter`: without its wake phrase)."""
        self.on_announcement: Callable[[AudioChunk], Awaitable[bool]] | None = None
        """Plays an announcement on the device (16 kHz); True once it has played out, False if it could not
        be (then no `played` is sent, and Home Assistant goes on after its own wait)."""
        self.on_timer_finished: Callable[[str | None], None] | None = None
        """One of Home Assistant's timers on this satellite went off (its name, if it has one): the device rings
        it, as it rings its own."""
        self.on_status: Callable[[str], None] | None = None
        """Told when Home Assistant starts, pauses or stops running this satellite (the CLI prints it, as it
        prints the MQTT link's status)."""
        self._server: asyncio.Server | None = None
        self._home: _HomeAssistant | None = None
        self._clients: set[asyncio.Task[None]] = set()

    # ----- the listener ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listening (OSError if the address cannot be had); `port` is the real one when 0 was asked for."""
        self._server = await asyncio.start_server(self._accepted, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.announce:
            await self._announcement.announce(f"{self.name}-satellite", self.host, self.port)

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
        await self.aclose()

    async def aclose(self) -> None:
        await self._announcement.withdraw()
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        self._server = None

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer), name="satellite-client")
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        home = _HomeAssistant(writer)
        try:
            while True:
                try:
                    event = await read_event(reader)
                except BrokenStream as exc:
                    await home.write(Error(text=str(exc), code="bad_stream").event())
                    break
                except BadEvent as exc:
                    await home.write(Error(text=str(exc), code="bad_event").event())
                    continue
                if event is None:
                    break
                await self._handle(home, event)
        except (ConnectionError, OSError):
            pass  # Home Assistant went away
        finally:
            home.running = False
            if home.pipeline is not None:
                home.pipeline.put_nowait(None)
            if self._home is home:
                self._home = None
                self._status("Home Assistant disconnected")
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, home: _HomeAssistant, event: Event) -> None:
        if Describe.is_type(event.type):
            await home.write(self.info().event())
        elif Ping.is_type(event.type):
            await home.write(Pong(text=Ping.from_event(event).text).event())
        elif RunSatellite.is_type(event.type):
            previous, self._home = self._home, home  # the latest Home Assistant to ask is the one served
            home.running = True
            if previous is not None and previous is not home:
                previous.running = False
            self._status("Home Assistant runs this satellite")
        elif PauseSatellite.is_type(event.type):
            home.running = False
            self._status("Home Assistant paused this satellite")
        elif TimerStarted.is_type(event.type):
            started = TimerStarted.from_event(event)
            home.timers[started.id] = started.name
        elif TimerCancelled.is_type(event.type):
            home.timers.pop(TimerCancelled.from_event(event).id, None)
        elif TimerFinished.is_type(event.type):
            name = home.timers.pop(TimerFinished.from_event(event).id, None)
            if self.on_timer_finished is not None:
                self.on_timer_finished(name)
        elif home.pipeline is not None:
            home.pipeline.put_nowait(event)
        elif AudioStart.is_type(event.type) or WyomingChunk.is_type(event.type) or AudioStop.is_type(event.type):
            try:
                self._announcement_part(home, event)
            except AudioFormatError as exc:
                home.announcing, home.announced, home.announced_samples = None, [], 0
                home.announcement_refused = True
                await home.write(Error(text=f"announcement: {exc}", code="bad_audio").event())
        else:
            log.debug("satellite: dropped %r outside a pipeline", event.type)

    def _announcement_part(self, home: _HomeAssistant, event: Event) -> None:
        """Audio outside a pipeline is an announcement (`assist_satellite.announce`): gathered until
        `audio-stop`, then played on the device like its own announcements, and `played` once it has."""
        if AudioStart.is_type(event.type):
            home.announcing, home.announced, home.announced_samples = None, [], 0
            home.announcement_refused = False
            home.announcing = AudioIn(PcmFormat.of(event.data))
        elif home.announcement_refused:
            return
        elif WyomingChunk.is_type(event.type):
            pcm = PcmFormat.of(event.data)
            home.announcing = home.announcing or AudioIn(pcm)
            home.announced.append(home.announcing.convert(pcm, event.payload or b""))
            home.announced_samples += len(home.announced[-1])
            if home.announced_samples > MAX_ANNOUNCEMENT_S * ENGINE_RATE:
                raise AudioFormatError(f"longer than {MAX_ANNOUNCEMENT_S:g} s")
        elif home.announcing is not None:
            home.announced.append(home.announcing.flush())
            audio = AudioChunk(np.concatenate(home.announced), ENGINE_RATE)
            home.announcing, home.announced, home.announced_samples = None, [], 0
            if len(audio.samples):
                self._spawn(self._announce(home, audio), "satellite-announce")

    async def _announce(self, home: _HomeAssistant, audio: AudioChunk) -> None:
        played = self.on_announcement is not None and await self.on_announcement(audio)
        log.info(
            "satellite: Home Assistant's announcement (%.1f s) %s", audio.duration, "played" if played else "not played"
        )
        if played:
            await self._send_played(home)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    def _status(self, text: str) -> None:
        log.info("satellite: %s", text)
        if self.on_status is not None:
            self.on_status(text)

    def info(self) -> Info:
        return Info(
            satellite=Satellite(
                name=self.name,
                attribution=ATTRIBUTION,
                installed=True,
                description=f"The appliance's microphone and speaker, woken by '{self.wake_phrase}'",
                version=__version__,
                has_vad=True,
                active_wake_words=[wake_model_name(self.wake_phrase)],
                max_active_wake_words=1,
                supports_trigger=False,
            )
        )

    @property
    def connected(self) -> bool:
        """A Home Assistant is connected and has asked to run this satellite."""
        return self._home is not None and self._home.running

    # ----- a request (the session's RemotePipeline) ------------------------------------------------

    async def answer(self, audio: Int16Array, play: Callable[[AudioChunk], None], record: TurnRecord) -> bool:
        home = self._home
        if home is None or not home.running:
            return self._failed(record, "Home Assistant is not connected to this satellite", heard=False)
        home.pipeline = asyncio.Queue()
        try:
            await self._send_request(home, audio if self.cut is None else await self.cut(audio))
            heard = await self._receive_answer(home, home.pipeline, play, record)
        except (PipelineFailed, ConnectionError, OSError) as exc:
            return self._failed(record, str(exc), heard=False)
        finally:
            home.pipeline = None
        home.owes_played = heard
        return True

    def _failed(self, record: TurnRecord, reason: str, *, heard: bool) -> bool:
        if self.fallback and not heard:
            log.info("satellite: %s; this device answers", reason)
            return False
        record.error = f"home assistant: {reason}"
        log.warning("satellite: %s", reason)
        return True

    async def _send_request(self, home: _HomeAssistant, audio: Int16Array) -> None:
        name = wake_model_name(self.wake_phrase)
        await home.write(RunPipeline(PipelineStage.ASR, PipelineStage.TTS, wake_word_name=name).event())
        await home.write(AudioStart(rate=ENGINE_RATE, width=2, channels=1).event())
        # The utterance starts at the first voiced frame; Whisper-like recognizers drop the first word of audio
        # that starts mid-speech (the satellite test lost "what is the"), so it is sent after a short silence.
        lead = np.zeros(int(LEADING_SILENCE_S * ENGINE_RATE), dtype="<i2")
        pcm = np.concatenate([lead, audio.astype("<i2")])
        for at in range(0, len(pcm), CHUNK_SAMPLES):
            block = pcm[at : at + CHUNK_SAMPLES].tobytes()
            await home.write(WyomingChunk(rate=ENGINE_RATE, width=2, channels=1, audio=block).event())
        await home.write(AudioStop().event())

    async def _receive_answer(
        self,
        home: _HomeAssistant,
        events: asyncio.Queue[Event | None],
        play: Callable[[AudioChunk], None],
        record: TurnRecord,
    ) -> bool:
        """Home Assistant's events until its spoken answer has ended; True if any of it was played. No
        answer starting within the deadline, an `error`, or a lost connection is PipelineFailed."""
        speech: AudioIn | None = None
        played = False
        while True:
            try:
                async with asyncio.timeout(self.timeout_s):
                    event = await events.get()
            except TimeoutError:
                raise PipelineFailed(f"no answer within {self.timeout_s:g} s") from None
            if event is None:
                raise PipelineFailed("the connection was lost mid-request")
            kind = event.type
            if Transcript.is_type(kind):
                record.user_text = Transcript.from_event(event).text.strip() or record.user_text
            elif Synthesize.is_type(kind):
                record.agent_text = Synthesize.from_event(event).text
            elif Error.is_type(kind):
                raise PipelineFailed(f"its pipeline failed: {Error.from_event(event).text}")
            elif AudioStart.is_type(kind):
                speech = AudioIn(_format(event))
            elif WyomingChunk.is_type(kind):
                speech = speech or AudioIn(_format(event))
                samples = speech.convert(_format(event), event.payload or b"")
                if len(samples):
                    play(AudioChunk(samples, ENGINE_RATE))
                    played = True
            elif AudioStop.is_type(kind) and speech is not None:
                rest = speech.flush()
                if len(rest):
                    play(AudioChunk(rest, ENGINE_RATE))
                return played or bool(len(rest))

    def turn_finished(self, _record: TurnRecord) -> None:
        """The session's turn is over (its audio has played out): `played`, if Home Assistant's answer was
        in it."""
        home = self._home
        if home is not None and home.owes_played:
            home.owes_played = False
            self._spawn(self._send_played(home), "satellite-played")

    async def _send_played(self, home: _HomeAssistant) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await home.write(Played().event())


def _format(event: Event) -> PcmFormat:
    try:
        return PcmFormat.of(event.data)
    except AudioFormatError as exc:
        raise PipelineFailed(f"its answer's audio: {exc}") from None
