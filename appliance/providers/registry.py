"""Descriptors -> providers. One place knows every provider the appliance can build.

A descriptor is `vendor/model[:option]`: `local/whisper-tiny.en`,
`local/piper-joe-medium`, `openai/gpt-4o-mini`, `openai/tts-1:alloy`. Local
models come from the model store; nothing is downloaded here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.models.manifest import load_manifest
from appliance.models.store import ModelStore
from appliance.providers.base import LLM, STT, TTS, VAD, Provider
from appliance.providers.compute import ComputeBudget
from appliance.providers.connectivity import Connectivity
from appliance.providers.fallback import FallbackLLM, FallbackOptions, FallbackSTT, FallbackTTS
from appliance.providers.secrets import SecretError, resolve_secret

if TYPE_CHECKING:
    from appliance.config import ProviderEndpoint
    from appliance.providers.cloud.openai_client import Endpoint

log = logging.getLogger(__name__)


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


def local_models(stage: str) -> list[str]:
    """The local models of a stage: the manifest's entries for it (one engine per stage runs them)."""
    return [entry.name for entry in load_manifest() if entry.stage == stage]


def _local(stage: str, text: str) -> Descriptor:
    descriptor = Descriptor.parse(text)
    if descriptor.vendor != "local":
        raise ProviderConfigError(f"{stage} provider {text!r} is not a local one")
    if descriptor.model not in local_models(stage):
        known = ", ".join(f"local/{m}" for m in local_models(stage))
        raise ProviderConfigError(f"{stage} provider {text!r} is unknown (local {stage} providers: {known})")
    return descriptor


def check_descriptor(stage: str, text: str, endpoints: Mapping[str, ProviderEndpoint] | None = None) -> None:
    """Validate without loading anything (for config checks and `doctor`)."""
    descriptor = Descriptor.parse(text)
    if descriptor.vendor == "local" or stage == "vad":
        _local(stage, text)
        return
    _endpoint(descriptor, endpoints or {}, resolve=False)


def _endpoint(descriptor: Descriptor, endpoints: Mapping[str, ProviderEndpoint], resolve: bool = True) -> Endpoint:
    from appliance.providers.cloud.openai_client import DEFAULT_BASE_URL, Endpoint

    section = endpoints.get(descriptor.vendor)
    base_url = section.base_url if section and section.base_url else None
    if base_url is None and descriptor.vendor == "openai":
        base_url = DEFAULT_BASE_URL
    if base_url is None:
        raise ProviderConfigError(
            f"provider {descriptor} needs [providers.{descriptor.vendor}] base_url (any OpenAI-compatible endpoint)"
        )
    key = section.api_key if section else None
    return Endpoint(descriptor.vendor, base_url, resolve_secret(key) if resolve else None)


@dataclass
class BuildContext:
    """What building a provider may need besides its descriptor."""

    store: ModelStore
    budget: ComputeBudget
    endpoints: Mapping[str, ProviderEndpoint] = field(default_factory=dict)
    language: str | None = "en"
    speed: float = 1.0
    context_tokens: int = 2048
    policy: str = "local-first"
    connectivity: Connectivity = field(default_factory=Connectivity)
    fallback: Mapping[str, FallbackOptions] = field(default_factory=dict)


def build_vad(text: str, store: ModelStore, budget: ComputeBudget) -> VAD:
    descriptor = _local("vad", text)
    from appliance.providers.local.silero_vad import SileroVAD

    path = store.require_file(descriptor.model, ".onnx")
    return SileroVAD(path, threads=budget.vad, descriptor=str(descriptor))


def build_stt(text: str, store: ModelStore, budget: ComputeBudget, language: str | None) -> STT:
    return build_stt_chain([text], BuildContext(store, budget, language=language))


def build_llm(text: str, store: ModelStore, budget: ComputeBudget, context_tokens: int) -> LLM:
    return build_llm_chain([text], BuildContext(store, budget, context_tokens=context_tokens))


def build_tts(text: str, store: ModelStore, budget: ComputeBudget, speed: float) -> TTS:
    return build_tts_chain([text], BuildContext(store, budget, speed=speed))


def build_stt_chain(chain: Sequence[str], ctx: BuildContext) -> STT:
    return _chain("stt", chain, ctx, _one_stt, FallbackSTT)  # type: ignore[return-value]


def build_llm_chain(chain: Sequence[str], ctx: BuildContext) -> LLM:
    return _chain("llm", chain, ctx, _one_llm, FallbackLLM)  # type: ignore[return-value]


def build_tts_chain(chain: Sequence[str], ctx: BuildContext) -> TTS:
    return _chain("tts", chain, ctx, _one_tts, FallbackTTS)  # type: ignore[return-value]


def _chain(stage: str, chain: Sequence[str], ctx: BuildContext, one: Any, fallback: Any) -> Provider:
    """One provider, or a fallback adapter over several. A cloud child whose secret is missing is
    left out with a warning (the device keeps its local providers); a chain with none left fails."""
    providers: list[Provider] = []
    problems: list[str] = []
    for text in chain:
        try:
            providers.append(one(Descriptor.parse(text), ctx))
        except SecretError as exc:
            problems.append(f"{text}: {exc}")
            log.warning("%s provider %s left out: %s", stage, text, exc)
    if not providers:
        raise ProviderConfigError(f"no usable {stage} provider ({'; '.join(problems)})")
    if len(providers) == 1:
        return providers[0]
    options = ctx.fallback.get(stage, FallbackOptions())
    return fallback(providers, policy=ctx.policy, connectivity=ctx.connectivity, options=options)  # type: ignore[no-any-return]


def _one_stt(descriptor: Descriptor, ctx: BuildContext) -> STT:
    if descriptor.vendor != "local":
        from appliance.providers.cloud.openai_stt import OpenAISTT

        endpoint = _endpoint(descriptor, ctx.endpoints)
        return OpenAISTT(endpoint, descriptor.model, str(descriptor), language=descriptor.option or ctx.language)
    _local("stt", str(descriptor))
    from appliance.providers.local.whisper_stt import WhisperSTT

    language = descriptor.option or ctx.language
    return WhisperSTT(ctx.store.require(descriptor.model), ctx.budget.stt, language, descriptor=str(descriptor))


def _one_llm(descriptor: Descriptor, ctx: BuildContext) -> LLM:
    if descriptor.vendor != "local":
        from appliance.providers.cloud.openai_llm import OpenAILLM

        return OpenAILLM(_endpoint(descriptor, ctx.endpoints), descriptor.model, str(descriptor))
    _local("llm", str(descriptor))
    from appliance.providers.local.llama_llm import LlamaCppLLM

    path = ctx.store.require_file(descriptor.model, ".gguf")
    return LlamaCppLLM(path, ctx.budget.llm, ctx.context_tokens, descriptor=str(descriptor))


def _one_tts(descriptor: Descriptor, ctx: BuildContext) -> TTS:
    if descriptor.vendor != "local":
        from appliance.providers.cloud.openai_tts import OpenAITTS

        endpoint = _endpoint(descriptor, ctx.endpoints)
        return OpenAITTS(endpoint, descriptor.model, descriptor.option or "alloy", str(descriptor))
    _local("tts", str(descriptor))
    from appliance.providers.local.piper_tts import PiperTTS

    return PiperTTS(
        ctx.store.require_file(descriptor.model, ".onnx"),
        ctx.store.require_file(descriptor.model, ".onnx.json"),
        ctx.budget.tts,
        speed=ctx.speed,
        descriptor=str(descriptor),
    )
