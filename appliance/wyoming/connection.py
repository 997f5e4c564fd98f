"""One Wyoming client connection: its events in, the services' answers out.

Events are taken in order; a request's answer is written before the next event is read, except speech
synthesized from streamed text, which is written as the text comes. Unknown event types are dropped, as the
protocol asks of a server (a newer client may send more than this one knows); a known event that is malformed,
or audio in a format that cannot be taken, is answered with an `error` event and the connection goes on. An
engine that fails gets the request an `error` too, and that connection closes (see `handle`); a conversation
request that cannot be answered also gets `not-handled`, the answer a conversation agent waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped
from wyoming.wake import Detect, Detection, NotDetected

from appliance.wyoming.asr import Transcription
from appliance.wyoming.audio_in import AudioFormatError, AudioIn, PcmFormat
from appliance.wyoming.describe import describe, wake_model_name
from appliance.wyoming.services import WyomingServices
from appliance.wyoming.speech_out import StreamedText, sentences_of, speak
from appliance.wyoming.wake import WakeSpotter

log = logging.getLogger(__name__)


class ClientError(ValueError):
    """What the client did wrong, with a code (`error` event's `code`)."""

    def __init__(self, text: str, code: str = "bad_request") -> None:
        super().__init__(text)
        self.code = code


class Connection:
    def __init__(self, services: WyomingServices, write: Callable[[Event], Awaitable[None]]) -> None:
        self.services = services
        self.write = write
        self._audio: AudioIn | None = None
        self._stream: Transcription | WakeSpotter | None = None
        self._language: str | None = None
        self._want_wake = False
        self._detected = False
        self._refused = False
        """The stream in progress was refused (told once): its further chunks are dropped until it ends."""
        self._text: StreamedText | None = None
        self._speaking: asyncio.Task[int] | None = None
        self.on_transcribed: Callable[[Transcription], None] | None = None
        """Sees each finished transcription (the bench reads whether the early transcript was used)."""

    async def error(self, text: str, code: str) -> None:
        log.info("wyoming: %s (%s)", text, code)
        await self.write(Error(text=text, code=code).event())

    async def handle(self, event: Event) -> bool:
        """Answer one event; False when the connection should close (a request failed in an engine)."""
        try:
            await self._dispatch(event)
        except ClientError as exc:
            await self._refuse(event, str(exc), exc.code)
        except AudioFormatError as exc:
            self._refuse_stream()
            await self.error(str(exc), "bad_audio")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            await self._refuse(event, f"malformed '{event.type}' event ({type(exc).__name__}: {exc})", "bad_event")
        except ConnectionError:
            raise
        except Exception as exc:  # an engine failed: this request fails, the service goes on
            log.exception("wyoming: '%s' failed", event.type)
            self._drop_stream()
            await self._refuse(event, f"'{event.type}' failed: {exc}", "failed")
            # Home Assistant's clients wait for the answer itself and pass over `error` events: closing the
            # connection is what ends their wait at once rather than at their pipeline's timeout.
            return False
        return True

    async def _refuse(self, event: Event, text: str, code: str) -> None:
        await self.error(text, code)
        if event.type == "transcript":  # a conversation agent waits for handled or not-handled
            await self.write(NotHandled(text=text).event())

    async def _dispatch(self, event: Event) -> None:
        kind = event.type
        if Describe.is_type(kind):
            await self.write(describe(self.services.names).event())
        elif Ping.is_type(kind):
            await self.write(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(kind):
            language = Transcribe.from_event(event).language
            self._language = _language(language, "transcribe", "language")
            self._want_wake = False
        elif Detect.is_type(kind):
            self._detect(Detect.from_event(event).names)
        elif kind == "audio-start":
            self._refused = False
            await self._start_stream(PcmFormat.of(event.data))
        elif kind == "audio-chunk":
            await self._chunk(event)
        elif kind == "audio-stop":
            await self._stop_stream()
        elif Synthesize.is_type(kind):
            if self._text is None:  # while text streams, the whole text comes along only for older servers
                text = _text(Synthesize.from_event(event).text, "synthesize")
                self._check_voice(event.data)
                await speak(self.services.tts, sentences_of(text), self.write)
        elif SynthesizeStart.is_type(kind):
            self._check_voice(event.data)
            await self._cancel_speaking()
            self._text = StreamedText()
            self._speaking = asyncio.get_running_loop().create_task(
                speak(self.services.tts, self._text.sentences(), self.write), name="wyoming-tts"
            )
        elif SynthesizeChunk.is_type(kind):
            if self._text is None:
                raise ClientError("synthesize-chunk without synthesize-start")
            self._text.add(_text(SynthesizeChunk.from_event(event).text, "synthesize-chunk", empty=True))
        elif SynthesizeStop.is_type(kind):
            await self._end_streamed_text()
        elif kind == "transcript":
            text = _text(Transcript.from_event(event).text, "transcript")
            await self.write(Handled(text=await self.services.agent.answer(text)).event())
        else:
            log.debug("wyoming: dropped an event of unknown type %r", kind)

    # ----- audio in: speech-to-text and wake ------------------------------------------------------

    def _detect(self, names: Any) -> None:
        if names is not None:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ClientError("detect: 'names' must be a list of wake word names", "bad_event")
            ours = wake_model_name(self.services.names.wake_phrase)
            if names and ours not in names:
                raise ClientError(f"no wake word among {names}: this device detects '{ours}'", "unknown_wake_word")
        self._want_wake = True

    async def _start_stream(self, pcm: PcmFormat) -> None:
        await self._close_stream()
        services = self.services
        self._audio = AudioIn(pcm)
        self._detected = False
        if self._want_wake:
            self._stream = WakeSpotter(services.stt, services.vad, services.wake)
        else:
            self._stream = Transcription(services.stt, services.vad, services.asr, self._language)

    async def _chunk(self, event: Event) -> None:
        if self._refused:
            return
        pcm = PcmFormat.of(event.data)
        if self._stream is None:  # audio without audio-start: the chunk says what it is
            await self._start_stream(pcm)
        assert self._audio is not None and self._stream is not None
        samples = self._audio.convert(pcm, event.payload or b"")
        if isinstance(self._stream, Transcription) and self._audio.seconds_in > self.services.max_audio_s:
            self._refuse_stream()
            raise ClientError(f"audio stream over {self.services.max_audio_s:g} s; send audio-stop sooner", "too_long")
        found = await self._stream.push(samples)
        if isinstance(self._stream, WakeSpotter) and found is not None and not self._detected:
            await self._send_detection(found)

    async def _stop_stream(self) -> None:
        stream, audio = self._stream, self._audio
        if self._refused:  # the end of a stream already answered with an error
            self._refused = False
            return
        if stream is None or audio is None:
            raise ClientError("audio-stop without audio")
        self._stream, self._audio = None, None
        try:
            if isinstance(stream, Transcription):
                transcript = await stream.finish(audio.flush())
                if self.on_transcribed is not None:
                    self.on_transcribed(stream)
                await self.write(Transcript(text=transcript.text.strip(), language=transcript.language).event())
            else:
                found = await stream.finish(audio.flush())
                if found is not None and not self._detected:
                    await self._send_detection(found)
                if not self._detected:
                    await self.write(NotDetected().event())
                self._want_wake = False
        finally:
            if isinstance(stream, Transcription):
                await stream.aclose()

    async def _send_detection(self, at_s: float) -> None:
        self._detected = True
        name = wake_model_name(self.services.names.wake_phrase)
        await self.write(Detection(name=name, timestamp=round(at_s * 1000)).event())

    def _refuse_stream(self) -> None:
        self._drop_stream()
        self._refused = True

    def _drop_stream(self) -> None:
        stream, self._stream, self._audio = self._stream, None, None
        if isinstance(stream, Transcription):
            asyncio.get_running_loop().create_task(stream.aclose())

    async def _close_stream(self) -> None:
        stream, self._stream, self._audio = self._stream, None, None
        if isinstance(stream, Transcription):
            await stream.aclose()

    # ----- speech out -----------------------------------------------------------------------------

    def _check_voice(self, data: dict[str, Any]) -> None:
        voice = data.get("voice")
        if voice is None:
            return
        if not isinstance(voice, dict):
            raise ClientError("'voice' must be an object with a 'name'", "bad_event")
        name = voice.get("name")
        if name is not None and name not in self.services.names.tts:
            raise ClientError(f"no voice {name!r}: this device speaks with {self.services.names.tts}", "unknown_voice")

    async def _end_streamed_text(self) -> None:
        text, speaking = self._text, self._speaking
        if text is None or speaking is None:
            raise ClientError("synthesize-stop without synthesize-start")
        text.end()
        self._text, self._speaking = None, None
        await speaking
        await self.write(SynthesizeStopped().event())

    async def _cancel_speaking(self) -> None:
        speaking, self._speaking, self._text = self._speaking, None, None
        if speaking is not None:
            speaking.cancel()
            with contextlib.suppress(BaseException):
                await speaking

    async def aclose(self) -> None:
        await self._cancel_speaking()
        await self._close_stream()


def _text(value: Any, event: str, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ClientError(f"{event}: 'text' must be a string", "bad_event")
    if not empty and not value.strip():
        raise ClientError(f"{event}: 'text' is empty", "bad_event")
    return value


def _language(value: Any, event: str, key: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ClientError(f"{event}: '{key}' must be a string", "bad_event")
    if not value:
        return None
    return value.replace("_", "-").split("-")[0].lower()  # Home Assistant may say "en-US"; Whisper wants "en"
