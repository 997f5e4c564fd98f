"""What the Wyoming services run on: the device's loaded engines and agent, handed over by the app."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.providers.base import STT, TTS, VAD
from appliance.wyoming.asr import AsrOptions
from appliance.wyoming.describe import ServiceNames
from appliance.wyoming.handle import AgentAnswers
from appliance.wyoming.wake import WakeOptions


@dataclass
class WyomingServices:
    stt: STT
    tts: TTS
    vad: VAD
    agent: AgentAnswers
    names: ServiceNames
    asr: AsrOptions
    wake: WakeOptions
    max_audio_s: float = 60.0
    """Audio one speech-to-text stream may carry; more is refused (a client that never stops). A wake stream
    has no limit: it runs until the phrase is heard, and keeps only its last seconds."""
