"""The device's microphone and speaker, through PortAudio (sounddevice).

The PortAudio callback threads only hand blocks over: the microphone callback
gives each block to the loop, the speaker callback takes the next block from a
small buffer the loop keeps filled (and tells the loop to refill it). Rates are
converted here, at the edge, with soxr. With echo cancellation on, what goes to
the speaker is the far end and the microphone is cleaned before VAD.

A device that fails to open, or disappears while open, is reported and retried
with backoff; the appliance never crashes for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from appliance.aio import Backoff
from appliance.audio.echo import EchoCanceller
from appliance.audio.frames import ENGINE_RATE, FrameSplitter, Int16Array, rms_dbfs
from appliance.audio.resample import StreamResampler
from appliance.emitter import Emitter
from appliance.transports.ports import AudioPipe, AudioPort, SessionPort
from appliance.transports.status import SoundDeviceState, SoundDeviceStatus
from appliance.voice.session import VoiceSession

log = logging.getLogger(__name__)
T = TypeVar("T")

MIC_QUEUE_LIMIT = 200
"""Blocks (2 s at 10 ms) the loop may fall behind before the oldest are dropped."""
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 3.0
MIC_SILENT_LIMIT_S = 2.0
"""A microphone that delivers nothing this long is gone (a working one always delivers blocks)."""


@dataclass(frozen=True)
class DeviceOptions:
    input_device: str | int | None = None
    output_device: str | int | None = None
    sample_rate: int | None = None
    block_ms: int = 10
    speaker_buffer_ms: int = 40
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


class DeviceTransport:
    def __init__(self, session: VoiceSession, options: DeviceOptions | None = None) -> None:
        self.session = session
        self.options = options or DeviceOptions()
        self.status = SoundDeviceStatus(SoundDeviceState.CLOSED)
        self.on_status: Emitter[[SoundDeviceStatus]] = Emitter("sound device status")
        self.input_level_dbfs = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mic: asyncio.Queue[Int16Array] = asyncio.Queue()
        self._speaker = _SpeakerBuffer()
        self._refill_pending = False
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
        self.peer = peer
        self._speaker.clear()  # what was buffered belongs to the old peer
        self._splitter = FrameSplitter(self._splitter.frame_samples)
        if peer is not None:
            peer.stop_listeners.connect(self._speaker.clear)

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
        self._in_resampler = StreamResampler(in_rate, ENGINE_RATE)
        self._out_resampler = StreamResampler(ENGINE_RATE, out_rate)
        self._out_rate = out_rate
        self._block_16k = ENGINE_RATE * opts.block_ms // 1000
        try:
            mic = sd.InputStream(
                device=in_info["index"],
                channels=1,
                samplerate=in_rate,
                dtype="int16",
                blocksize=in_rate * opts.block_ms // 1000,
                callback=self._on_mic,
            )
            speaker = sd.OutputStream(
                device=out_info["index"],
                channels=1,
                samplerate=out_rate,
                dtype="int16",
                blocksize=out_rate * opts.block_ms // 1000,
                callback=self._on_speaker,
            )
        except sd.PortAudioError as exc:
            raise DeviceError(f"cannot open {in_info['name']!r} / {out_info['name']!r}: {exc}") from None
        self._speaker.clear()  # the callback finds it empty, plays silence and asks the loop to refill
        try:
            mic.start()
            speaker.start()
        except sd.PortAudioError as exc:
            mic.close()
            speaker.close()
            raise DeviceError(f"cannot start {in_info['name']!r} / {out_info['name']!r}: {exc}") from None
        log.info(
            "sound devices: in %r at %d Hz, out %r at %d Hz",
            in_info["name"],
            in_rate,
            out_info["name"],
            out_rate,
        )
        return mic, speaker

    # ----- the callback threads: hand over, nothing else -----------------------------------------

    def _on_mic(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        block = np.array(indata[:, 0], dtype=np.int16)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._mic_arrived, block)

    def _on_speaker(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        outdata[:, 0] = self._speaker.take(frames)
        loop = self._loop
        if loop is not None and not self._refill_pending:
            self._refill_pending = True
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._refill)

    # ----- the loop side ---------------------------------------------------------------------------

    def _mic_arrived(self, block: Int16Array) -> None:
        if self._mic.qsize() >= MIC_QUEUE_LIMIT:
            self._mic.get_nowait()  # the loop fell far behind: drop the oldest audio, not the newest
        self._mic.put_nowait(block)

    def _refill(self) -> None:
        """Keep `speaker_buffer_ms` of the agent's voice (or silence) queued for the speaker."""
        self._refill_pending = False
        target = self._out_rate * self.options.speaker_buffer_ms // 1000
        while self._speaker.samples < target:
            ahead = self._speaker.samples / self._out_rate
            peer = self.peer
            block = peer.pull(self._block_16k, ahead) if peer else np.zeros(self._block_16k, dtype=np.int16)
            if self._echo is not None:
                self._echo.far(block)
            self._speaker.push(self._out_resampler.push(block))

    async def _stream(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self._mic.get())
                done, _ = await asyncio.wait(
                    {getter, stopping}, timeout=MIC_SILENT_LIMIT_S, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    if not stop.is_set():
                        return  # no audio for too long, or the stream stopped: the device went away
                    continue
                await self._consume(getter.result())
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
