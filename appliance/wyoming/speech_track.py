"""Voice activity over one client stream: the audio so far, and where the speech in it was.

The speech-to-text service uses it to start transcribing in the silence before the client ends the stream;
the wake service to cut the stream into utterances. Times are on the stream's own audio timeline (seconds
since its first sample), so nothing depends on how fast the client sends.
"""

from __future__ import annotations

import numpy as np

from appliance.audio.frames import ENGINE_RATE, FrameSplitter, Int16Array
from appliance.config import VadConfig
from appliance.providers.base import VAD
from appliance.voice.activity import Activity, ActivityEvent, VoiceActivity


class SpeechTrack:
    def __init__(self, vad: VAD, options: VadConfig, keep_s: float | None = None) -> None:
        self._vad = vad.fork()  # its own recurrent state: other streams run at the same time
        self._activity = VoiceActivity(options)
        self._splitter = FrameSplitter(self._vad.frame_samples)
        self._blocks: list[Int16Array] = []
        self._samples = 0
        self._framed = 0
        self._dropped = 0
        """Samples forgotten from the start of the stream (`keep_s`)."""
        self.keep_s = keep_s
        """Keep only this much of the latest audio (a wake stream may run for hours); None: all of it."""
        self.heard_speech = False

    @property
    def seconds(self) -> float:
        """Audio received so far."""
        return self._samples / ENGINE_RATE

    @property
    def speaking(self) -> bool:
        return self._activity.state is Activity.SPEAKING

    @property
    def last_voiced(self) -> float:
        return self._activity.last_voiced

    async def push(self, samples: Int16Array) -> list[ActivityEvent]:
        if len(samples):
            self._blocks.append(samples)
            self._samples += len(samples)
            self._forget_old()
        events: list[ActivityEvent] = []
        for frame in self._splitter.push(samples):
            start = self._framed / ENGINE_RATE
            self._framed += len(frame)
            event = self._activity.update(await self._vad.probability(frame), start, self._framed / ENGINE_RATE)
            if event is not None:
                self.heard_speech = True
                events.append(event)
        return events

    @property
    def kept_samples(self) -> int:
        return self._samples - self._dropped

    def audio(self, start: float = 0.0, end: float | None = None) -> Int16Array:
        """The stream's audio between two of its times (all that is kept by default)."""
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        kept = self._blocks[0] if self._blocks else np.zeros(0, dtype=np.int16)
        first = max(0, round(start * ENGINE_RATE) - self._dropped)
        return kept[first : None if end is None else max(first, round(end * ENGINE_RATE) - self._dropped)]

    def _forget_old(self) -> None:
        if self.keep_s is None:
            return
        keep = round(self.keep_s * ENGINE_RATE)
        excess = self.kept_samples - keep
        if excess < keep:  # trim in big steps, not on every push
            return
        kept = np.concatenate(self._blocks)[excess:]
        self._blocks = [kept]
        self._dropped += excess
