"""The composition root: builds every part from config and owns their lifecycle (load, run, close).

`fleet/`, `system/` and `cli/` talk to this object and to `control.py`, never to the inside of `voice/`.
"""

from __future__ import annotations

import logging

import numpy as np

from appliance.agents.agent import Agent
from appliance.agents.registry import UnknownAgentError, add_search_path, create_agent
from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.audio.playback import PlaybackQueue
from appliance.audio.resample import resample
from appliance.calls.manager import CallManager
from appliance.config import AppConfig, ConfigError
from appliance.engines import Engines
from appliance.models.errors import ModelStoreError
from appliance.models.manifest import UnknownModelError
from appliance.providers.base import LLMOptions
from appliance.providers.compute import ComputeBudget
from appliance.providers.registry import ProviderConfigError
from appliance.transports.device import DeviceTransport
from appliance.transports.livekit_auth import RoomCredentials, room_credentials
from appliance.voice.session import VoiceSession
from appliance.voice.state import HISTORY_CHARS_PER_TOKEN, SessionOptions
from appliance.voice.text_conversation import TextConversation
from appliance.voice.turn_state import Providers
from appliance.wyoming.asr import AsrOptions
from appliance.wyoming.describe import ServiceNames
from appliance.wyoming.handle import AgentAnswers
from appliance.wyoming.services import WyomingServices
from appliance.wyoming.wake import WakeOptions

log = logging.getLogger(__name__)


def session_options(config: AppConfig) -> SessionOptions:
    """The conversation's options: the config's own sections, plus the LLM's per-request settings."""
    return SessionOptions(
        activity=config.vad,
        endpointing=config.endpointing,
        interruption=config.interruption,
        timeouts=config.timeouts,
        llm=LLMOptions(max_tokens=config.llm.max_tokens, temperature=config.llm.temperature),
        language=config.stt.language,
        activation=config.activation,
        history_chars=config.llm.context_tokens * HISTORY_CHARS_PER_TOKEN,
        max_tool_steps=config.agent.max_tool_steps,
    )


START_ERRORS: tuple[type[Exception], ...] = (
    UnknownAgentError,
    ProviderConfigError,
    ModelStoreError,
    UnknownModelError,
    ConfigError,
)
"""What a start raises when the config is one this box cannot run (not a bug, not a crash)."""


def preflight(config: AppConfig) -> None:
    """What a start refuses, checked without loading anything: the agent, every descriptor and its
    endpoint, and the local models in the store. A fleet change must pass it too, or a box could be
    told into a config it cannot start with (and then never come back to be fixed)."""
    make_agent(config)
    Engines(config).check(models=True)


def make_agent(config: AppConfig) -> Agent:
    """The configured agent, looked up in the registry, entry points or by import path (with the
    config's search path): UnknownAgentError, one line, if it cannot be loaded."""
    add_search_path(config.agent.search_path or [])
    agent = create_agent(config.agent.name)
    if config.agent.instructions:
        agent.instructions = config.agent.instructions
    return agent


class Appliance:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.engines = Engines(config)

    @classmethod
    async def started(cls, config: AppConfig, warm_up: bool = True) -> Appliance:
        """Built and loaded; on failure (a bad descriptor, a missing model) nothing is left open."""
        appliance = cls(config)
        try:
            await appliance.load(warm_up)
        except BaseException:
            await appliance.aclose()
            raise
        return appliance

    @property
    def budget(self) -> ComputeBudget:
        return self.engines.budget

    @property
    def providers(self) -> Providers | None:
        return self.engines.providers

    async def load(self, warm_up: bool = True) -> Providers:
        """Every engine, loaded and warmed up; fails fast, before loading anything, on an agent or a
        descriptor nothing can build."""
        make_agent(self.config)
        return await self.engines.load(warm_up)

    async def swap_providers(self, config: AppConfig, stages: list[str]) -> None:
        """New provider chains for `stages`; every session follows at its next request."""
        await self.engines.swap(config, stages)
        self.config = config

    def new_session(self, output_rate: int = ENGINE_RATE) -> VoiceSession:
        if self.providers is None:
            raise RuntimeError("load() the appliance before starting a session")
        return VoiceSession(
            self.providers, make_agent(self.config), PlaybackQueue(output_rate), session_options(self.config)
        )

    def new_calls(self, primary: VoiceSession, device: DeviceTransport | None) -> CallManager:
        """The LiveKit call manager: further rooms get sessions of their own from these engines."""
        return CallManager(
            self.config.livekit,
            primary,
            device,
            new_session=lambda: self.new_session(ENGINE_RATE),
            synthesize=self.synthesize,
        )

    def new_text_conversation(self) -> TextConversation:
        """The configured agent answering text (tools and all) on the loaded LLM chain."""
        if self.providers is None:
            raise RuntimeError("load() the appliance before starting a conversation")
        options = session_options(self.config)
        return TextConversation(
            self.providers.llm, make_agent(self.config), options.llm, options.history_chars, options.max_tool_steps
        )

    def wyoming_services(self) -> WyomingServices:
        """The loaded engines and a text conversation with the agent, as the Wyoming services serve them."""
        providers = self.providers
        if providers is None:
            raise RuntimeError("load() the appliance before serving Wyoming")
        config = self.config
        conversation = self.new_text_conversation()
        return WyomingServices(
            stt=providers.stt,
            tts=providers.tts,
            vad=providers.vad,
            agent=AgentAnswers(conversation),
            names=ServiceNames(
                stt=list(config.stt.provider),
                tts=list(config.tts.provider),
                wake_phrase=config.activation.wake_phrase,
                agent=conversation.runtime.agent.name,
                language=config.stt.language,
            ),
            asr=AsrOptions(config.stt.language, config.vad, config.endpointing.min_silence_ms / 1000),
            wake=WakeOptions(config.activation, config.stt.language, config.vad),
            max_audio_s=config.wyoming.max_audio_s,
        )

    async def synthesize(self, text: str) -> Int16Array:
        """`text` in the configured voice as 16 kHz samples (a busy line for a caller)."""
        providers = self.providers
        if providers is None:
            return np.zeros(0, dtype=np.int16)
        pieces = [resample(chunk, ENGINE_RATE).samples async for chunk in providers.tts.synthesize(text)]
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)

    def auto_join_credentials(self) -> RoomCredentials | None:
        """The room to join at start, or None; a secret that cannot be read raises `RoomConfigError`."""
        if not self.config.livekit.auto_join:
            return None
        return room_credentials(self.config.livekit)

    async def aclose(self) -> None:
        await self.engines.aclose()
