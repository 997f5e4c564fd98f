"""Builds the parts from config and owns their lifecycle (load, run, close).

`fleet/` and `ops/` talk to this object, never to the inside of `voice/`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from appliance.agents.agent import Agent, create_agent
from appliance.audio.playback import PlaybackQueue
from appliance.config import AppConfig
from appliance.ops.manifest import load_manifest
from appliance.ops.model_store import ModelStore
from appliance.providers.base import LLMOptions
from appliance.providers.compute import ComputeBudget
from appliance.providers.connectivity import Connectivity
from appliance.providers.fallback import FallbackOptions
from appliance.providers.registry import (
    BuildContext,
    build_llm_chain,
    build_stt_chain,
    build_tts_chain,
    build_vad,
    check_descriptor,
)
from appliance.voice.activation import ActivationMode, ActivationOptions
from appliance.voice.activity import ActivityOptions
from appliance.voice.endpointing import EndpointingOptions
from appliance.voice.reply import ReplyTimeouts
from appliance.voice.session import VoiceSession
from appliance.voice.state import InterruptionOptions, SessionOptions
from appliance.voice.turn_state import Providers

log = logging.getLogger(__name__)


def session_options(config: AppConfig) -> SessionOptions:
    return SessionOptions(
        activity=ActivityOptions(config.vad.activation, config.vad.deactivation, config.vad.min_speech_ms),
        endpointing=EndpointingOptions(
            config.endpointing.min_silence_ms,
            config.endpointing.max_silence_ms,
            config.endpointing.max_turn_s,
        ),
        interruption=InterruptionOptions(
            config.interruption.enabled,
            config.interruption.min_speech_ms,
            config.interruption.resume_after_ms,
        ),
        reply_timeouts=ReplyTimeouts(config.timeouts.llm_first_token_s, config.timeouts.tts_first_audio_s),
        stt_timeout_s=config.timeouts.stt_s,
        llm=LLMOptions(max_tokens=config.llm.max_tokens, temperature=config.llm.temperature),
        preemptive=config.endpointing.preemptive,
        language=config.stt.language,
        history_chars=config.llm.context_tokens * 2,
        activation=ActivationOptions(
            mode=ActivationMode(config.activation.mode),
            wake_phrase=config.activation.wake_phrase,
            follow_up_s=config.activation.follow_up_s,
            stop_phrases=tuple(config.activation.stop_phrases),
        ),
        timeout_message=config.timeouts.message or None,
    )


def make_agent(config: AppConfig) -> Agent:
    agent = create_agent(config.agent.name)
    if config.agent.instructions:
        agent.instructions = config.agent.instructions
    return agent


class Appliance:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.store = ModelStore(config.models.dir, load_manifest())
        self.budget = ComputeBudget.for_cores(config.compute.threads)
        self.providers: Providers | None = None
        self.connectivity = Connectivity()
        """Shared by every stage: one OFFLINE failure skips the cloud everywhere."""

    def check(self) -> None:
        """Fail fast, before loading anything, on descriptors we cannot build."""
        create_agent(self.config.agent.name)
        check_descriptor("vad", self.config.vad.provider)
        for stage, chain in (
            ("stt", self.config.stt.provider),
            ("llm", self.config.llm.provider),
            ("tts", self.config.tts.provider),
        ):
            for descriptor in chain:
                check_descriptor(stage, descriptor, self.config.providers)

    def _context(self, stage: str) -> BuildContext:
        cfg = self.config
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
            fallback={stage: FallbackOptions(deadline, fb.probe_initial_s, fb.probe_max_s)},
        )

    async def load(self, warm_up: bool = True) -> Providers:
        """Load every engine (in parallel worker threads) and warm each up once."""
        self.check()
        cfg = self.config
        started = time.monotonic()
        times: dict[str, float] = {}

        async def timed(stage: str, fn):  # type: ignore[no-untyped-def]
            t0 = time.monotonic()
            result = await asyncio.to_thread(fn)
            times[stage] = time.monotonic() - t0
            return result

        vad, stt, llm, tts = await asyncio.gather(
            timed("vad", lambda: build_vad(cfg.vad.provider, self.store, self.budget)),
            timed("stt", lambda: build_stt_chain(cfg.stt.provider, self._context("stt"))),
            timed("llm", lambda: build_llm_chain(cfg.llm.provider, self._context("llm"))),
            timed("tts", lambda: build_tts_chain(cfg.tts.provider, self._context("tts"))),
        )
        providers = Providers(vad=vad, stt=stt, llm=llm, tts=tts)
        if warm_up:
            await asyncio.gather(*(p.warm_up() for p in (stt, llm, tts) if not getattr(p, "is_cloud", False)))
        self.providers = providers
        log.info("engines ready in %.2f s (%s; per stage %s)", time.monotonic() - started, self.budget, times)
        return providers

    async def swap_providers(self, config: AppConfig, stages: list[str]) -> None:
        """Build the given stages' provider chains from `config` and swap them in (the old ones close).

        Builds everything first: if one fails, nothing has changed.
        """
        if self.providers is None:
            return
        old_config, self.config = self.config, config
        try:
            builders = {"stt": (build_stt_chain, config.stt.provider), "llm": (build_llm_chain, config.llm.provider),
                        "tts": (build_tts_chain, config.tts.provider)}  # fmt: skip
            built = {}
            for stage in stages:
                build, chain = builders[stage]
                built[stage] = await asyncio.to_thread(build, chain, self._context(stage))  # type: ignore[operator]
        except Exception:
            self.config = old_config
            raise
        for stage, provider in built.items():
            old = getattr(self.providers, stage)
            setattr(self.providers, stage, provider)
            await old.aclose()

    def new_session(self, output_rate: int) -> VoiceSession:
        if self.providers is None:
            raise RuntimeError("load() the appliance before starting a session")
        return VoiceSession(
            self.providers, make_agent(self.config), PlaybackQueue(output_rate), session_options(self.config)
        )

    async def aclose(self) -> None:
        providers, self.providers = self.providers, None
        if providers is not None:
            for provider in (providers.vad, providers.stt, providers.llm, providers.tts):
                await provider.aclose()
