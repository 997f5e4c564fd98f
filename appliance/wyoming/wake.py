"""The wake service: the device's wake phrase spotted in a client stream.

The same detector as on the device (`voice/activation.py`): each short utterance the voice detector cuts from
the stream is transcribed by the local STT, primed with the phrase, and matched word by word. An utterance is
checked when it ends, or once it is `max_utterance_s` long (the phrase comes first, the rest may go on).
A wake stream has no length limit (Home Assistant streams a satellite's microphone into it until the phrase
is heard), so only the last few seconds of it are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.audio.frames import Int16Array
from appliance.config import ActivationConfig, VadConfig
from appliance.providers.base import STT, VAD
from appliance.voice.activation import ActivationGate, ActivationMode
from appliance.voice.activity import SpeechEnded, SpeechStarted
from appliance.wyoming.speech_track import SpeechTrack

PAD_S = 0.15
"""Audio kept around an utterance: the voice detector starts a little late and stops a little early."""


@dataclass(frozen=True)
class WakeOptions:
    activation: ActivationConfig
    language: str | None
    vad: VadConfig
    max_utterance_s: float = 2.5


class WakeSpotter:
    def __init__(self, stt: STT, vad: VAD, options: WakeOptions) -> None:
        self._stt = stt
        self._options = options
        self._gate = ActivationGate(options.activation.model_copy(update={"mode": ActivationMode.WAKE}))
        # An utterance is checked within `max_utterance_s` of its start: older audio is never needed again.
        self._track = SpeechTrack(vad, options.vad, keep_s=options.max_utterance_s + 2.0)
        self._started: float | None = None
        self._checked = False
        self.detections: list[float] = []
        """Stream times (s) at which the phrase was heard."""

    async def push(self, samples: Int16Array) -> float | None:
        """The stream time the phrase was heard at, if it was heard in what this push completed."""
        found = None
        for event in await self._track.push(samples):
            if isinstance(event, SpeechStarted):
                self._started, self._checked = event.at, False
            elif isinstance(event, SpeechEnded) and self._started is not None:
                if not self._checked:
                    found = found or await self._check(self._started, event.last_voiced + PAD_S)
                self._started = None
        started = self._started
        if started is not None and not self._checked and self._track.seconds - started >= self._options.max_utterance_s:
            self._checked = True  # long: the phrase, if any, is in its first seconds; check once
            found = found or await self._check(started, self._track.seconds)
        return found

    async def finish(self, tail: Int16Array) -> float | None:
        found = await self.push(tail)
        if found is None and self._started is not None and not self._checked:
            found = await self._check(self._started, self._track.seconds)
        return found

    async def _check(self, start: float, end: float) -> float | None:
        audio = self._track.audio(start - PAD_S, end)
        transcript = await self._stt.transcribe(audio, self._options.language, self._gate.stt_prompt)
        if not self._gate.heard_wake_phrase(transcript.text):
            return None
        self.detections.append(end)
        return end
