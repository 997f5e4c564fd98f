"""What the services are, as `describe` answers it: the `info` event Home Assistant reads to add them.

Each service names the device's own chain: the speech-to-text and text-to-speech descriptors in fallback
order (local first, as configured), the wake phrase, and the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)

from appliance import __version__

ATTRIBUTION = Attribution(name="appliance", url="")  # no public home to point at yet


@dataclass(frozen=True)
class ServiceNames:
    stt: list[str]
    """The speech-to-text chain's descriptors, primary first."""
    tts: list[str]
    wake_phrase: str
    agent: str
    language: str | None
    """The configured language; None: Whisper detects it (a multilingual model)."""


def wake_model_name(phrase: str) -> str:
    """The wake model's name, as clients ask for it in `detect` ("hey appliance" -> "hey_appliance")."""
    return "_".join(phrase.lower().split())


def describe(names: ServiceNames) -> Info:
    languages = stt_languages(names)
    speech_language = [names.language or "en"]
    return Info(
        asr=[
            AsrProgram(
                name="appliance-stt",
                attribution=ATTRIBUTION,
                installed=True,
                description=f"The device's speech-to-text: {' then '.join(names.stt)}",
                version=__version__,
                models=[
                    AsrModel(
                        name=descriptor,
                        attribution=ATTRIBUTION,
                        installed=True,
                        description="primary" if i == 0 else "fallback",
                        version=None,
                        languages=languages,
                    )
                    for i, descriptor in enumerate(names.stt)
                ],
                supports_transcript_streaming=False,
            )
        ],
        tts=[
            TtsProgram(
                name="appliance-tts",
                attribution=ATTRIBUTION,
                installed=True,
                description=f"The device's voice: {' then '.join(names.tts)}",
                version=__version__,
                voices=[
                    TtsVoice(
                        name=descriptor,
                        attribution=ATTRIBUTION,
                        installed=True,
                        description="primary" if i == 0 else "fallback",
                        version=None,
                        languages=speech_language,
                    )
                    for i, descriptor in enumerate(names.tts)
                ],
                supports_synthesize_streaming=True,
            )
        ],
        wake=[
            WakeProgram(
                name="appliance-wake",
                attribution=ATTRIBUTION,
                installed=True,
                description="The device's wake phrase, spotted by its speech-to-text",
                version=__version__,
                models=[
                    WakeModel(
                        name=wake_model_name(names.wake_phrase),
                        attribution=ATTRIBUTION,
                        installed=True,
                        description=names.wake_phrase,
                        version=None,
                        languages=speech_language,
                        phrase=names.wake_phrase,
                    )
                ],
            )
        ],
        handle=[
            HandleProgram(
                name="appliance-agent",
                attribution=ATTRIBUTION,
                installed=True,
                description=f"The device's agent '{names.agent}', tools and all",
                version=__version__,
                models=[
                    HandleModel(
                        name=names.agent,
                        attribution=ATTRIBUTION,
                        installed=True,
                        description=None,
                        version=None,
                        languages=speech_language,
                    )
                ],
                supports_handled_streaming=False,
                supports_home_control=False,
            )
        ],
    )


def stt_languages(names: ServiceNames) -> list[str]:
    """The configured language; with none configured, every language Whisper knows (unless an English-only
    model is in the chain)."""
    if names.language:
        return [names.language]
    if any(descriptor.endswith(".en") for descriptor in names.stt):
        return ["en"]
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return ["en"]
    return sorted(_LANGUAGE_CODES)
