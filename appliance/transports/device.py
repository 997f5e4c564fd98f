"""The device's microphone and speaker, through PortAudio (sounddevice).

The PortAudio callback threads only hand blocks over: the microphone callback
queues each block (one VAD frame long) and wakes the loop once for all it
queued since the loop last looked; the speaker callback takes the next block
from a small buffer the loop keeps filled. While the agent talks the speaker
asks for a refill as it drains; while it is silent the microphone's wake-ups
top the buffer up, so an idle device wakes the loop ~31 times a second, not
200. Rates are converted here, at the edge, with soxr. With echo cancellation
on, what goes to the speaker is the far end and the microphone is cleaned
before VAD (the canceller rests while the speaker is silent).

Audio times handed to the session count the device's own latency (PortAudio's
input and output latency, the speaker buffer, how long the loop took to get
round to it), so the session's voice-to-voice is what the user hears.

A device that fails to open, or disappears while open, is reported and retried
with backoff; the appliance never crashes for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from appliance.aio import Backoff
from appliance.audio.echo import ECHO_TAIL_S, EchoCanceller
from appliance.audio.frames import ENGINE_RATE, FrameSplitter, Int16Array, rms_dbfs
from appliance.audio.resample import StreamResampler
from appliance.emitter import Emitter
from appliance.transports.ports import AudioPipe, AudioPort, SessionPort
from appliance.transports.status import SoundDeviceState, SoundDeviceStatus
from appliance.voice.session import VoiceSession

log = logging.getLogger(__name__)
T = TypeVar("T")

MIC_BACKLOG_S = 2.0
"""How far the loop may fall behind the microphone before the oldest audio is dropped."""
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 3.0
MIC_SILENT_LIMIT_S = 2.0
"""A microphone that delivers nothing this long is gone (a working one always delivers blocks)."""


@dataclass(frozen=True)
class DeviceLatency:
    """The device path's own delay, as PortAudio reports it once the streams are open (seconds)."""

    input_s: float
    output_s: float
    speaker_buffer_s: float
    """What the loop keeps queued ahead of the speaker while the agent talks."""

    @property
    def total_s(self) -> float:
        return self.input_s + self.output_s + self.speaker_buffer_s

    def to_json(self) -> dict[str, float]:
        return {
            "input_ms": round(1000 * self.input_s, 1),
            "output_ms": round(1000 * self.output_s, 1),
            "speaker_buffer_ms": round(1000 * self.speaker_buffer_s, 1),
            "total_ms": round(1000 * self.total_s, 1),
        }


@dataclass(frozen=True)
class DeviceOptions:
    input_device: str | int | None = None
    output_device: str | int | None = None
    sample_rate: int | None = None
    block_ms: int = 10
    """The speaker's block: small, so a stop is heard at once. The microphone reads one VAD frame a block."""
    speaker_buffer_ms: int = 40
    latency: str | float = "high"
    """PortAudio's suggested latency for both streams: "low", "high" or seconds."""
    echo_cancellation: bool = True
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0


class DeviceError(RuntimeError):
    """A sound device could not be opened or failed; one line."""


class _SpeakerBuffer:
    """Blocks at the device rate, shared by the loop (producer) and the callback thread (consumer)."""

    def __init__(self) -> None:
        self._pipe = AudioPipe(max_s=5.0, rate=ENGINE_RATE)  # only ever `speaker_buffer_ms` deep
        self._lock = threading.Lock()

    @property
    def samples(self) -> int:
        return self._pipe.queued_samples

    def push(self, block: Int16Array) -> None:
        with self._lock:
            self._pipe.write(block)

    def take(self, count: int) -> Int16Array:
        with self._lock:
            return self._pipe.read(count)

    def clear(self) -> None:
        with self._lock:
            self._pipe.clear()

    def replace(self, block: Int16Array) -> None:
        """Drop what is queued (only silence) and queue `block` in one step."""
        with self._lock:
            self._pipe.clear()
            self._pipe.write(block)


class DeviceTransport:
    def __init__(self, session: VoiceSession, options: DeviceOptions | None = None) -> None:
        self.session = session
        self.options = options or DeviceOptions()
        self.status = SoundDeviceStatus(SoundDeviceState.CLOSED)
        self.on_status: Emitter[[SoundDeviceStatus]] = Emitter("sound device status")
        self.input_level_dbfs = float("-inf")
        self.latency: DeviceLatency | None = None
        """Known once the streams are open."""
        self.loop_wakeups = 0
        """Times the callback threads woke the loop (what batching saves; for the bench)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: deque[tuple[Int16Array, float]] = deque()
        """Microphone blocks and when they arrived, from the callback thread to the loop."""
        self._mic_ready = asyncio.Event()
        self._mic_wake_pending = False
        self._fed_arrival: float | None = None
        """When the newest block the session has heard arrived from PortAudio (monotonic)."""
        self._speaker = _SpeakerBuffer()
        self._refill_pending = False
        self._silent_pulled = 0
        """16 kHz samples pulled for the speaker since the last one with sound."""
        self._inbox_limit = math.ceil(MIC_BACKLOG_S * ENGINE_RATE / session.vad.frame_samples)
        self._resting_samples = ENGINE_RATE
        """Silence kept queued for the speaker while it rests (set when the streams open)."""
        self._portaudio = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portaudio")
        self._echo = EchoCanceller() if self.options.echo_cancellation else None
        self._splitter = FrameSplitter(session.vad.frame_samples)
        if session.output.sample_rate != ENGINE_RATE:
            raise ValueError("the device transport pulls 16 kHz from the session and converts at the device")
        self.peer: AudioPort | None = None
        self.attach(SessionPort(session))

    def attach(self, peer: AudioPort | None) -> None:
        """Talk to another port from now on (None: the microphone goes nowhere, the speaker is quiet).

        The conversation moved to a room, or an operator's intercom took the device over.
        """
        if self.peer is not None:
            self.peer.stop_listeners.disconnect(self._speaker.clear)
            self.peer.play_listeners.disconnect(self._peer_has_sound)
        self.peer = peer
        self._speaker.clear()  # what was buffered belongs to the old peer
        self._splitter = FrameSplitter(self._splitter.frame_samples)
        if peer is not None:
            peer.stop_listeners.connect(self._speaker.clear)
            peer.play_listeners.connect(self._peer_has_sound)

    # ----- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Open the devices (retrying with backoff), stream until `stop` is set, close cleanly."""
        self._loop = asyncio.get_running_loop()
        backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s)
        attempts = 0
        while not stop.is_set():
            try:
                streams = await self._portaudio_call(
                    functools.partial(self._open, attempts > 0), OPEN_TIMEOUT_S, "opening"
                )
                attempts += 1
            except DeviceError as exc:
                attempts += 1
                self._set_status(SoundDeviceStatus(SoundDeviceState.UNAVAILABLE, str(exc)))
                delay = backoff.next()
                log.warning("sound device: %s (retrying in %.1f s)", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            backoff.reset()
            self._set_status(SoundDeviceStatus(SoundDeviceState.STREAMING))
            try:
                await self._stream(stop)
            finally:
                if not stop.is_set():
                    self._set_status(SoundDeviceStatus(SoundDeviceState.LOST))
                    log.warning("sound device stopped delivering audio; reopening")
                with contextlib.suppress(DeviceError):
                    await self._portaudio_call(functools.partial(_close, streams), CLOSE_TIMEOUT_S, "closing")
        self._set_status(SoundDeviceStatus(SoundDeviceState.CLOSED))
        self._portaudio.shutdown(wait=False)

    async def _portaudio_call(self, fn: Callable[[], T], timeout: float, what: str) -> T:
        """Run a PortAudio call on its own thread: with a stalled sound server it can block for
        long, and the loop must keep running. Calls queue behind a stuck one, never overlap."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._portaudio, fn)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            future.add_done_callback(_close_if_opened)
            raise DeviceError(f"{what} the sound device timed out after {timeout:g} s") from None

    def _set_status(self, status: SoundDeviceStatus) -> None:
        self.status = status
        self.on_status.emit(status)

    # ----- opening -----------------------------------------------------------------------------

    def _open(self, rescan: bool) -> tuple[Any, Any]:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:
            raise DeviceError(f"PortAudio is not available ({exc})") from None
        if rescan:
            # PortAudio lists devices once, when it starts: restart it to see a device plugged in since.
            with contextlib.suppress(Exception):
                sd._terminate()
                sd._initialize()
        opts = self.options
        try:
            in_info = sd.query_devices(opts.input_device, kind="input")
            out_info = sd.query_devices(opts.output_device, kind="output")
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceError(str(exc)) from None
        in_rate = opts.sample_rate or int(in_info["default_samplerate"])
        out_rate = opts.sample_rate or int(out_info["default_samplerate"])
        self._use_rates(in_rate, out_rate)
        mic_block_s = self._splitter.frame_samples / ENGINE_RATE  # one VAD frame: it decides on no less
        try:
            mic = sd.InputStream(
                device=in_info["index"],
                channels=1,
                samplerate=in_rate,
                dtype="int16",
                blocksize=round(in_rate * mic_block_s),
                latency=opts.latency,
                callback=self._on_mic,
            )
            speaker = sd.OutputStream(
                device=out_info["index"],
                channels=1,
                samplerate=out_rate,
                dtype="int16",
                blocksize=out_rate * opts.block_ms // 1000,
                latency=opts.latency,
                callback=self._on_speaker,
            )
        except sd.PortAudioError as exc:
            raise DeviceError(f"cannot open {in_info['name']!r} / {out_info['name']!r}: {exc}") from None
        self._speaker.clear()  # the callback finds it empty, plays silence and asks the loop to refill
        self._inbox.clear()  # what an earlier stream left is stale
        self._mic_wake_pending = False
        self._fed_arrival = None
        try:
            mic.start()
            speaker.start()
        except sd.PortAudioError as exc:
            mic.close()
            speaker.close()
            raise DeviceError(f"cannot start {in_info['name']!r} / {out_info['name']!r}: {exc}") from None
        self._use_latency(float(mic.latency), float(speaker.latency))
        log.info(
            "sound devices: in %r at %d Hz, out %r at %d Hz; latency in %.0f ms, out %.0f ms",
            in_info["name"],
            in_rate,
            out_info["name"],
            out_rate,
            1000 * float(mic.latency),
            1000 * float(speaker.latency),
        )
        return mic, speaker

    def _use_rates(self, in_rate: int, out_rate: int) -> None:
        opts = self.options
        self._in_resampler = StreamResampler(in_rate, ENGINE_RATE)
        self._out_resampler = StreamResampler(ENGINE_RATE, out_rate)
        self._out_rate = out_rate
        self._block_16k = ENGINE_RATE * opts.block_ms // 1000
        self._resting_samples = (
            ENGINE_RATE * (opts.speaker_buffer_ms + 2 * opts.block_ms) // 1000 + self._splitter.frame_samples
        )

    def _use_latency(self, input_s: float, output_s: float) -> None:
        self.latency = DeviceLatency(input_s, output_s, self.options.speaker_buffer_ms / 1000)
        if self._echo is not None:  # what is handed to the speaker comes back this much later, at least
            self._echo.tail_s = ECHO_TAIL_S + self.latency.total_s + self._resting_samples / ENGINE_RATE

    # ----- the callback threads: hand over, nothing else -----------------------------------------

    def _on_mic(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        self._inbox.append((np.array(indata[:, 0], dtype=np.int16), time.monotonic()))
        if len(self._inbox) > self._inbox_limit:
            with contextlib.suppress(IndexError):  # the loop fell far behind: drop the oldest audio
                self._inbox.popleft()
        if not self._mic_wake_pending:  # one wake-up for however many blocks it finds
            self._mic_wake_pending = True
            self._wake(self._mic_ready.set)

    def _on_speaker(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        outdata[:, 0] = self._speaker.take(frames)
        if self._refill_pending or (self._speaker_resting and self._speaker.samples >= frames):
            return  # silent: the microphone's wake-ups keep it topped up
        self._refill_pending = True
        self._wake(self._refill)

    def _wake(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None:
            self.loop_wakeups += 1
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)

    # ----- the loop side ---------------------------------------------------------------------------

    def _peer_has_sound(self) -> None:
        """New audio to play: a resting speaker fetches it now rather than at the next mic wake-up
        (soon after, not inside the caller's `play`, whose pull would call it back mid-way)."""
        loop = self._loop
        if loop is not None and self._speaker_resting and not self._refill_pending:
            self._refill_pending = True
            loop.call_soon(self._refill)

    @property
    def _speaker_resting(self) -> bool:
        """Nothing but silence pulled for longer than the buffer holds: it holds only silence."""
        return self._silent_pulled >= self._resting_samples

    def _refill(self) -> None:
        """Keep `speaker_buffer_ms` of the agent's voice queued for the speaker (more while silent, as
        silence: the first sound replaces it, so it never delays the voice)."""
        self._refill_pending = False
        while True:
            resting = self._speaker_resting
            target = self._resting_samples if resting else ENGINE_RATE * self.options.speaker_buffer_ms // 1000
            missing = target - self._speaker.samples * ENGINE_RATE // self._out_rate
            if resting:  # look for sound at every wake-up, even with the silence topped up
                missing = max(missing, self._block_16k)
            if missing <= 0:
                return
            count = -(-missing // self._block_16k) * self._block_16k  # whole blocks, in one pull
            queued = 0 if resting else self._speaker.samples  # resting: sound would replace the queue
            peer = self.peer
            ahead = queued / self._out_rate + self._device_delay_s()
            block = peer.pull(count, ahead) if peer else np.zeros(count, dtype=np.int16)
            sound = bool(np.any(block))
            if self._echo is not None:
                self._echo.far(block)
            converted = self._out_resampler.push(block)
            if sound and resting:
                self._speaker.replace(converted)
            else:
                self._speaker.push(converted)
            self._silent_pulled = 0 if sound else self._silent_pulled + len(block)
            if resting and not sound:
                return  # one look per wake-up while resting

    def _device_delay_s(self) -> float:
        """From the newest sample the session heard to a sample the speaker is handed now being heard,
        beyond what is queued: PortAudio's input and output latency, and how long ago that sample arrived."""
        latency = self.latency
        if latency is None:
            return 0.0
        lag = time.monotonic() - self._fed_arrival if self._fed_arrival is not None else 0.0
        return latency.input_s + latency.output_s + lag

    async def _stream(self, stop: asyncio.Event) -> None:
        ready = self._mic_ready
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _f: ready.set())
        try:
            while not stop.is_set():
                try:
                    async with asyncio.timeout(MIC_SILENT_LIMIT_S):
                        await ready.wait()
                except TimeoutError:
                    return  # no audio for too long: the device went away
                ready.clear()
                self._mic_wake_pending = False  # before taking: a block queued from now on wakes us again
                while self._inbox and not stop.is_set():
                    block, arrived = self._inbox.popleft()
                    await self._consume(block)
                    self._fed_arrival = arrived
                self._refill()
        finally:
            stopping.cancel()

    async def _consume(self, block: Int16Array) -> None:
        samples = self._in_resampler.push(block)
        if self._echo is not None:
            samples = self._echo.near(samples)
        if len(samples):
            self.input_level_dbfs = rms_dbfs(samples)
        for frame in self._splitter.push(samples):
            peer = self.peer
            if peer is not None:
                await peer.feed(frame)


def _close(streams: tuple[Any, Any]) -> None:
    for stream in streams:
        with contextlib.suppress(Exception):
            stream.abort()
            stream.close()


def _close_if_opened(future: asyncio.Future[Any]) -> None:
    """An open that completed after we gave up on it: close what it opened."""
    if not future.cancelled() and future.exception() is None and isinstance(future.result(), tuple):
        threading.Thread(target=_close, args=(future.result(),), daemon=True).start()
