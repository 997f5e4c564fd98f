"""Descriptors -> providers. One place knows every provider the appliance can build.

A descriptor is `vendor/model[:option]`: `local/whisper-tiny.en`,
`local/piper-joe-medium`, `openai/gpt-4o-mini`, `openai/tts-1:alloy`. Local
models come from the model store; nothing is downloaded here.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.ops.model_store import ModelStore
from appliance.providers.base import LLM, STT, TTS, VAD
from appliance.providers.compute import ComputeBudget


class ProviderConfigError(ValueError):
    """A descriptor that names no provider we can build; one line, names the descriptor."""


@dataclass(frozen=True)
class Descriptor:
    vendor: str
    model: str
    option: str | None = None

    @staticmethod
    def parse(text: str) -> Descriptor:
        vendor, sep, rest = text.partition("/")
        if not sep or not vendor or not rest:
            raise ProviderConfigError(f"{text!r} is not a provider descriptor like 'local/whisper-tiny.en'")
        model, _, option = rest.partition(":")
        return Descriptor(vendor, model, option or None)

    def __str__(self) -> str:
        return f"{self.vendor}/{self.model}" + (f":{self.option}" if self.option else "")


LOCAL_MODELS: dict[str, tuple[str, ...]] = {
    "vad": ("silero-vad",),
    "stt": ("whisper-tiny.en", "whisper-base"),
    "llm": ("smollm2-135m",),
    "tts": ("piper-joe-medium",),
}


def _local(stage: str, text: str) -> Descriptor:
    descriptor = Descriptor.parse(text)
    if descriptor.vendor != "local":
        raise ProviderConfigError(
            f"{stage} provider {text!r}: only local providers are available in this build "
            f"(cloud providers such as 'openai/...' are not implemented yet)"
        )
    if descriptor.model not in LOCAL_MODELS[stage]:
        known = ", ".join(f"local/{m}" for m in LOCAL_MODELS[stage])
        raise ProviderConfigError(f"{stage} provider {text!r} is unknown (local {stage} providers: {known})")
    return descriptor


def check_descriptor(stage: str, text: str) -> None:
    """Validate without loading anything (for config checks and `doctor`)."""
    _local(stage, text)


def build_vad(text: str, store: ModelStore, budget: ComputeBudget) -> VAD:
    descriptor = _local("vad", text)
    from appliance.providers.local.silero_vad import SileroVAD

    path = store.require(descriptor.model) / "silero_vad.onnx"
    return SileroVAD(path, threads=budget.vad, descriptor=str(descriptor))


def build_stt(text: str, store: ModelStore, budget: ComputeBudget, language: str | None) -> STT:
    descriptor = _local("stt", text)
    from appliance.providers.local.whisper_stt import WhisperSTT

    language = descriptor.option or language
    return WhisperSTT(store.require(descriptor.model), budget.stt, language, descriptor=str(descriptor))


def build_llm(text: str, store: ModelStore, budget: ComputeBudget, context_tokens: int) -> LLM:
    descriptor = _local("llm", text)
    from appliance.providers.local.llama_llm import LlamaCppLLM

    path = store.require(descriptor.model) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return LlamaCppLLM(path, budget.llm, context_tokens, descriptor=str(descriptor))


def build_tts(text: str, store: ModelStore, budget: ComputeBudget, speed: float) -> TTS:
    descriptor = _local("tts", text)
    from appliance.providers.local.piper_tts import PiperTTS

    root = store.require(descriptor.model)
    return PiperTTS(
        root / "en_US-joe-medium.onnx",
        root / "en_US-joe-medium.onnx.json",
        budget.tts,
        speed=speed,
        descriptor=str(descriptor),
    )
