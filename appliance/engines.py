"""The engines of this process: every provider chain built from config in one place, and swapped live.

`run`, `console`, `console --text`, `say` and `bench` all build their providers here, fallback and
cloud included; the model store and the compute budget are made once per process. The loaded STT,
LLM and TTS are swappable (see `providers/swappable.py`), so a live config change reaches every
conversation at its next request without closing an engine under a request that still runs on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from appliance.config import AppConfig
from appliance.models.store import ModelStore, open_store
from appliance.providers.base import LLM, STT, TTS, VAD, Provider
from appliance.providers.compute import ComputeBudget
from appliance.providers.connectivity import Connectivity
from appliance.providers.fallback import FallbackOptions
from appliance.providers.registry import (
    BuildContext,
    Descriptor,
    build_llm_chain,
    build_stt_chain,
    build_tts_chain,
    build_vad,
    check_descriptor,
)
from appliance.providers.swappable import SwappableLLM, SwappableSTT, SwappableTTS
from appliance.voice.turn_state import Providers

log = logging.getLogger(__name__)

STAGES = ("stt", "llm", "tts")


class Engines:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.store: ModelStore = open_store(config.models.dir)
        self.budget = ComputeBudget.for_cores(config.compute.threads)
        self.connectivity = Connectivity()
        """Shared by every stage: one OFFLINE failure skips the cloud everywhere."""
        self.providers: Providers | None = None
        self._swappable: dict[str, SwappableSTT | SwappableLLM | SwappableTTS] = {}

    def check(self, config: AppConfig | None = None, models: bool = False) -> None:
        """Fail fast, before loading anything, on descriptors nothing can build (and, with `models`, on
        local models missing from the store: a quick size check, no hashing)."""
        config = config or self.config
        check_descriptor("vad", config.vad.provider)
        local = [config.vad.provider]
        for stage in STAGES:
            for descriptor in _chain(config, stage):
                check_descriptor(stage, descriptor, config.providers)
                local += [descriptor] if descriptor.startswith("local/") else []
        if models:
            store = open_store(config.models.dir)
            for descriptor in local:
                store.require(Descriptor.parse(descriptor).model)

    def context(self, stage: str, config: AppConfig | None = None) -> BuildContext:
        cfg = config or self.config
        fb = cfg.fallback
        deadline = {"stt": fb.stt_s, "llm": fb.llm_first_token_s, "tts": fb.tts_first_audio_s}[stage]
        return BuildContext(
            store=self.store,
            budget=self.budget,
            endpoints=cfg.providers,
            language=cfg.stt.language,
            speed=cfg.tts.speed,
            context_tokens=cfg.llm.context_tokens,
            policy={"stt": cfg.stt.policy, "llm": cfg.llm.policy, "tts": cfg.tts.policy}[stage],
            connectivity=self.connectivity,
            fallback={
                stage: FallbackOptions(
                    deadline,
                    fb.probe_initial_s,
                    fb.probe_max_s,
                    hedge_after_s=(fb.llm_race_s or None) if stage == "llm" else None,
                )
            },
        )

    def vad(self) -> VAD:
        return build_vad(self.config.vad.provider, self.store, self.budget)

    def stt(self, config: AppConfig | None = None) -> STT:
        return build_stt_chain(_chain(config or self.config, "stt"), self.context("stt", config))

    def llm(self, config: AppConfig | None = None) -> LLM:
        return build_llm_chain(_chain(config or self.config, "llm"), self.context("llm", config))

    def tts(self, config: AppConfig | None = None) -> TTS:
        return build_tts_chain(_chain(config or self.config, "tts"), self.context("tts", config))

    async def load(self, warm_up: bool = True) -> Providers:
        """Build every chain (in parallel worker threads) and warm each local engine up once."""
        self.check()
        started = time.monotonic()
        times: dict[str, float] = {}

        async def timed(stage: str, build: Any) -> Any:
            t0 = time.monotonic()
            result = await asyncio.to_thread(build)
            times[stage] = time.monotonic() - t0
            return result

        vad, stt, llm, tts = await asyncio.gather(
            timed("vad", self.vad), timed("stt", self.stt), timed("llm", self.llm), timed("tts", self.tts)
        )
        live_stt, live_llm, live_tts = SwappableSTT(stt), SwappableLLM(llm), SwappableTTS(tts)
        self._swappable = {"stt": live_stt, "llm": live_llm, "tts": live_tts}
        providers = Providers(vad=vad, stt=live_stt, llm=live_llm, tts=live_tts)
        if warm_up:
            await asyncio.gather(*(p.warm_up() for p in (stt, llm, tts) if not p.is_cloud))
        self.providers = providers
        log.info("engines ready in %.2f s (%s; per stage %s)", time.monotonic() - started, self.budget, times)
        return providers

    async def swap(self, config: AppConfig, stages: list[str]) -> None:
        """Build the stages' chains from `config` and swap them in; builds everything first, so a
        failure changes nothing. Old engines close once no conversation runs a request on them."""
        if self.providers is None:
            return
        self.check(config)
        builders = {"stt": self.stt, "llm": self.llm, "tts": self.tts}
        built: dict[str, Provider] = {}
        try:
            for stage in stages:
                built[stage] = await asyncio.to_thread(builders[stage], config)
        except BaseException:
            for provider in built.values():
                await provider.aclose()
            raise
        for stage, provider in built.items():
            self._swappable[stage].swap(provider)  # type: ignore[arg-type]
        self.config = config

    async def aclose(self) -> None:
        providers, self.providers = self.providers, None
        if providers is not None:
            for provider in (providers.vad, providers.stt, providers.llm, providers.tts):
                await provider.aclose()


def _chain(config: AppConfig, stage: str) -> list[str]:
    chain: list[str] = getattr(config, stage).provider
    return chain
