"""Echo cancellation: the agent must not hear itself through the room.

WebRTC's audio processing module (through livekit's `rtc.AudioProcessingModule`)
learns the path from the speaker to the microphone: what the speaker plays goes
in as the far end (`far`), the microphone comes out cleaned (`near`). It also
suppresses stationary noise and removes rumble below ~80 Hz. It works on 10 ms
frames at 16 kHz; this class does the framing, so callers push any block size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from appliance.audio.frames import ENGINE_RATE, Int16Array

if TYPE_CHECKING:
    from livekit.rtc import AudioFrame

_FRAME = ENGINE_RATE // 100  # 10 ms


class EchoCanceller:
    def __init__(self, *, noise_suppression: bool = True, high_pass: bool = True, delay_ms: int = 0) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass,
            auto_gain_control=False,
        )
        if delay_ms:
            self._apm.set_stream_delay_ms(delay_ms)
        self._far_pending = np.zeros(0, dtype=np.int16)
        self._near_pending = np.zeros(0, dtype=np.int16)

    def far(self, samples: Int16Array) -> None:
        """What the speaker is about to play (16 kHz), in the order it plays."""
        data = np.concatenate([self._far_pending, samples])
        whole = len(data) - len(data) % _FRAME
        for start in range(0, whole, _FRAME):
            frame = self._frame(data[start : start + _FRAME])
            self._apm.process_reverse_stream(frame)
        self._far_pending = data[whole:].copy()

    def near(self, samples: Int16Array) -> Int16Array:
        """Microphone audio (16 kHz) in, the same amount of cleaned audio out (delayed < 10 ms)."""
        data = np.concatenate([self._near_pending, samples])
        whole = len(data) - len(data) % _FRAME
        out = np.empty(whole, dtype=np.int16)
        for start in range(0, whole, _FRAME):
            frame = self._frame(data[start : start + _FRAME])
            self._apm.process_stream(frame)
            out[start : start + _FRAME] = np.frombuffer(frame.data, dtype=np.int16)
        self._near_pending = data[whole:].copy()
        return out

    def _frame(self, block: Int16Array) -> AudioFrame:
        return self._rtc.AudioFrame(block.astype(np.int16).tobytes(), ENGINE_RATE, 1, _FRAME)
