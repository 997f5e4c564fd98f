"""`appliance bench`: latency and memory of the whole pipeline on this machine.

One session answers every question in tests/data/questions at real-time pace,
through the file transport (the same timeline a sound card would give). Each
question is followed by silence until the reply has played, as a person would
wait. Reports p50/p95 of every latency field, engine load time, RSS after
loading and at the end (peak), RSS growth over the turns, and CPU use. Then the
measures of parts: idle CPU, barge-in, tool use, fallback, memory by engine, first audio (the short first
piece against the whole first sentence: latency and WER), speech-to-text (the short
window against the 30 s path: latency and WER) and the wake phrase.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.app import Appliance
from appliance.audio.frames import AudioChunk
from appliance.audio.wav import read_wav
from appliance.bench.fallback import fallback_costs_ms
from appliance.bench.first_audio import first_audio_bench
from appliance.bench.listening import barge_in_reactions_ms, idle_cpu_percent
from appliance.bench.memory import memory_by_engine
from appliance.bench.stt_eval import SttBenchError, stt_bench
from appliance.bench.tool_eval import evaluate_tools
from appliance.bench.wake_eval import evaluate_wake
from appliance.config import AppConfig
from appliance.system.process import current_rss_mb, peak_rss_mb
from appliance.transports.file import FileTransport
from appliance.voice.turn_record import LATENCY_FIELDS, TurnRecord

QUESTIONS_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "questions"
INTERRUPTION = QUESTIONS_DIR.parent / "interruption_espeak.wav"
GAP_S = 0.6


class BenchError(RuntimeError):
    """A measure that could not run here (one line)."""


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def run_bench(
    config: AppConfig,
    questions: list[Path],
    skip: frozenset[str] = frozenset(),
    livekit: bool = False,
    wyoming: bool = False,
) -> dict[str, Any]:
    wall0, cpu0 = time.monotonic(), time.process_time()
    appliance = await Appliance.started(config)
    load_s = time.monotonic() - wall0
    rss_loaded = current_rss_mb()
    records: list[TurnRecord] = []
    rss_per_turn: list[float] = []
    try:
        session = appliance.new_session(16_000)
        session.on_turn.connect(records.append)
        session.on_turn.connect(lambda _r: rss_per_turn.append(current_rss_mb()))
        transport = FileTransport(session, realtime=True)
        run_wall0, run_cpu0 = time.monotonic(), time.process_time()
        for path in questions:
            await transport.feed(AudioChunk.silence(GAP_S))
            await transport.feed(read_wav(path))
            await transport.drain(extra_s=0.2)
        run_wall = time.monotonic() - run_wall0
        run_cpu = time.process_time() - run_cpu0
        peak_conversation = peak_rss_mb()
        await session.aclose()
        listening: dict[str, Any] = {}
        if "idle" not in skip:
            listening["idle_cpu_percent_of_one_core"] = round(await idle_cpu_percent(appliance), 1)
        if "barge" not in skip:
            reactions = await barge_in_reactions_ms(appliance, questions[0], INTERRUPTION)
            listening["barge_in_reaction_ms"] = {
                "p50": percentile(reactions, 50),
                "max": max(reactions) if reactions else None,
                "trials": len(reactions),
            }
        if "tools" not in skip:
            assert appliance.providers is not None
            listening["tool_use"] = (await evaluate_tools(appliance.providers.llm)).to_json()
        if "fallback" not in skip:
            listening["fallback"] = await fallback_costs_ms(config, questions[0])
        if "memory" not in skip:
            listening["memory_by_engine_mb"] = await asyncio.to_thread(memory_by_engine, config)
        if "first" not in skip:
            assert appliance.providers is not None
            listening["first_audio"] = await first_audio_bench(appliance.providers.tts, appliance.providers.stt)
        if "stt" not in skip:
            assert appliance.providers is not None
            try:
                listening["stt"] = await stt_bench(appliance.providers.stt)
            except SttBenchError as exc:
                raise BenchError(str(exc)) from None
        if "wake" not in skip:
            assert appliance.providers is not None
            wake = await evaluate_wake(appliance.providers.stt, appliance.providers.tts)
            listening["wake_phrase"] = wake.to_json()
        if livekit:
            from appliance.bench.livekit import livekit_voice_to_voice_ms
            from appliance.bench.livekit_server import LiveKitServerError

            try:
                listening["livekit_voice_to_voice_ms"] = await livekit_voice_to_voice_ms(appliance, config, questions)
            except LiveKitServerError as exc:
                raise BenchError(f"bench --livekit: {exc}") from None
        if wyoming:
            from appliance.bench.wyoming import wyoming_latency_ms

            replies = [r.agent_text for r in records if r.agent_text]
            listening["wyoming"] = await wyoming_latency_ms(appliance, questions, replies)
    finally:
        await appliance.aclose()
    latency: dict[str, dict[str, float | None]] = {}
    for name in LATENCY_FIELDS:
        values = [float(v) for r in records if (v := r.latency_ms.get(name)) is not None]
        latency[name] = {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "n": float(len(values)),
        }
    return {
        "machine": {"cores": os.cpu_count(), "budget": appliance.budget.__dict__},
        "providers": records[0].providers if records else {},
        "questions": len(questions),
        "turns": len(records),
        "errors": [r.error for r in records if r.error],
        "latency_ms": latency,
        "load_s": round(load_s, 2),
        "rss_mb": {
            "after_load": round(rss_loaded, 1),
            "peak": round(peak_conversation, 1),
            "peak_including_listening_measures": round(peak_rss_mb(), 1),
            "first_turn": round(rss_per_turn[0], 1) if rss_per_turn else None,
            "last_turn": round(rss_per_turn[-1], 1) if rss_per_turn else None,
            "per_turn": [round(v, 1) for v in rss_per_turn],
        },
        "cpu": {
            "conversation_percent_of_one_core": round(100 * run_cpu / run_wall, 1) if run_wall else None,
            "total_cpu_s": round(time.process_time() - cpu0, 1),
        },
        "listening": listening,
        "turn_records": [r.to_json() for r in records],
    }
