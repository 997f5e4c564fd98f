"""Bench measure of fallback: what a dead cloud costs a turn, and what a known-offline one costs.

Each trial is one real-time voice turn through the file pipeline with the LLM chain
[cloud, local]. The "cloud" is on loopback: a port that accepts and never answers (the
first-token deadline expires, then local answers), or a closed port (refused: the device
learns it is offline, and the next turn skips the cloud at once). The cost is the turn's
voice-to-voice latency minus that of the same turn with the local LLM alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

import numpy as np

from appliance.app import Appliance
from appliance.audio.frames import AudioChunk
from appliance.audio.wav import read_wav
from appliance.config import AppConfig, FallbackConfig, LlmConfig, ProviderEndpoint
from appliance.providers.fallback import FallbackLLM
from appliance.providers.swappable import SwappableLLM
from appliance.transports.file import FileTransport
from appliance.voice.turn_record import TurnRecord

DEADLINE_S = 1.0


async def _turns(config: AppConfig, question: Path, count: int, forget: bool = False) -> list[TurnRecord]:
    appliance = await Appliance.started(config)
    records: list[TurnRecord] = []
    try:
        session = appliance.new_session(16_000)
        session.on_turn.connect(records.append)
        transport = FileTransport(session, realtime=True)
        llm = session.providers.llm
        chain = llm.engine if isinstance(llm, SwappableLLM) else llm
        for _ in range(count):
            if forget and isinstance(chain, FallbackLLM):
                chain.reset_status()
            await transport.feed(AudioChunk.silence(0.5))
            await transport.feed(read_wav(question))
            await transport.drain(extra_s=0.2)
        await session.aclose()
    finally:
        await appliance.aclose()
    return records


def _with_cloud(config: AppConfig, base_url: str, fallback: FallbackConfig | None = None) -> AppConfig:
    llm = config.llm.model_copy(update={"provider": ["openai/bench-cloud", *config.llm.provider]})
    return config.model_copy(
        update={
            "llm": LlmConfig.model_validate(llm.model_dump()),
            "providers": {**config.providers, "openai": ProviderEndpoint(base_url=base_url, api_key="unused")},
            "fallback": fallback or FallbackConfig(llm_first_token_s=DEADLINE_S, probe_initial_s=600.0, llm_race_s=0),
        }
    )


def _v2v(records: list[TurnRecord]) -> list[float]:
    return [float(v) for r in records if (v := r.latency_ms.get("voice_to_voice")) is not None]


async def fallback_costs_ms(config: AppConfig, question: Path, trials: int = 2) -> dict[str, Any]:
    baseline = float(np.median(_v2v(await _turns(config, question, trials))))

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)

    hung = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    hung_url = f"http://127.0.0.1:{port}/v1"
    try:
        # Between turns the adapter forgets the failure, so every turn meets the dead cloud.
        records = await _turns(_with_cloud(config, hung_url), question, trials, forget=True)
        dead_cloud = _v2v(records)
        # cloud-first at the shipped deadlines: the hung cloud is raced by the local LLM (`llm_race_s`).
        shipped = FallbackConfig(probe_initial_s=600.0)
        raced_records = await _turns(_with_cloud(config, hung_url, shipped), question, trials, forget=True)
        raced = _v2v(raced_records)
    finally:
        hung.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hung.wait_closed(), 1.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    offline = await _turns(_with_cloud(config, f"http://127.0.0.1:{closed_port}/v1"), question, trials + 1)
    known_offline = _v2v(offline)[1:]  # the first turn learns the device is offline
    return {
        "first_token_deadline_s": DEADLINE_S,
        "local_only_v2v_ms": round(baseline),
        "dead_cloud_extra_ms": [round(v - baseline) for v in dead_cloud],
        "hung_cloud_raced": {
            "first_token_deadline_s": shipped.llm_first_token_s,
            "race_after_s": shipped.llm_race_s,
            "v2v_ms": [round(v) for v in raced],
            "extra_ms": [round(v - baseline) for v in raced],
            "won_by": [race["winner"] for r in raced_records for race in r.raced],
        },
        "known_offline_extra_ms": [round(v - baseline) for v in known_offline],
        "providers_used": sorted({r.providers.get("llm", "") for r in offline}),
    }
