"""`appliance bench`: latency and memory of the whole pipeline on this machine.

One session answers every question in tests/data/questions at real-time pace,
through the file transport (the same timeline a sound card would give). Each
question is followed by silence until the reply has played, as a person would
wait. Reports p50/p95 of every latency field, engine load time, RSS after
loading and at the end (peak), RSS growth over the turns, and CPU use.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.audio.frames import AudioChunk
from appliance.audio.wav import read_wav
from appliance.cli import EXIT_FAILURE, EXIT_OK, CliError
from appliance.commands.common import load_appliance
from appliance.config import AppConfig
from appliance.ops.bench_fallback import fallback_costs_ms
from appliance.ops.bench_listening import barge_in_reactions_ms, idle_cpu_percent
from appliance.ops.process import current_rss_mb, peak_rss_mb
from appliance.ops.tool_eval import evaluate_tools
from appliance.ops.wake_eval import evaluate_wake
from appliance.transports.file import FileTransport
from appliance.voice.turn_record import LATENCY_FIELDS, TurnRecord

QUESTIONS_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "questions"
INTERRUPTION = QUESTIONS_DIR.parent / "interruption_espeak.wav"
GAP_S = 0.6


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def run_bench(
    config: AppConfig, questions: list[Path], skip: frozenset[str] = frozenset(), livekit: bool = False
) -> dict[str, Any]:
    wall0, cpu0 = time.monotonic(), time.process_time()
    appliance = await load_appliance(config)
    load_s = time.monotonic() - wall0
    rss_loaded = current_rss_mb()
    records: list[TurnRecord] = []
    rss_per_turn: list[float] = []
    try:
        session = appliance.new_session(16_000)
        session.on_turn.append(records.append)
        session.on_turn.append(lambda _r: rss_per_turn.append(current_rss_mb()))
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
        if "wake" not in skip:
            assert appliance.providers is not None
            wake = await evaluate_wake(appliance.providers.stt, appliance.providers.tts)
            listening["wake_phrase"] = wake.to_json()
        if livekit:
            from appliance.ops.bench_livekit import livekit_voice_to_voice_ms
            from appliance.ops.livekit_server import LiveKitServerError

            try:
                listening["livekit_voice_to_voice_ms"] = await livekit_voice_to_voice_ms(appliance, config, questions)
            except LiveKitServerError as exc:
                raise CliError(f"bench --livekit: {exc}") from None
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


async def bench_command(args: argparse.Namespace, config: AppConfig) -> int:
    questions = sorted(QUESTIONS_DIR.glob("*.wav"))
    if args.questions:
        questions = questions[: args.questions]
    if not questions:
        raise CliError(f"no benchmark questions in {QUESTIONS_DIR}")
    result = await run_bench(config, questions, frozenset(args.skip or ()), livekit=args.livekit)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return EXIT_OK if result["turns"] == len(questions) and not result["errors"] else EXIT_FAILURE


def _print(result: dict[str, Any]) -> None:
    print(f"bench: {result['questions']} questions, {result['turns']} turns, providers {result['providers']}")
    print(f"{'latency (ms)':<16}{'p50':>8}{'p95':>8}")
    for name, stats in result["latency_ms"].items():
        p50, p95 = stats["p50"], stats["p95"]
        print(f"{name:<16}{_fmt(p50):>8}{_fmt(p95):>8}")
    rss = result["rss_mb"]
    print(
        f"load {result['load_s']} s; RSS after load {rss['after_load']} MB, peak {rss['peak']} MB "
        f"({rss['peak_including_listening_measures']} MB with the measures below), "
        f"first turn {rss['first_turn']} MB, last turn {rss['last_turn']} MB"
    )
    cpu = result["cpu"]
    print(f"CPU during the conversation: {cpu['conversation_percent_of_one_core']} % of one core")
    listening = result["listening"]
    if "idle_cpu_percent_of_one_core" in listening:
        print(f"idle listening (VAD only): {listening['idle_cpu_percent_of_one_core']} % of one core")
    if "barge_in_reaction_ms" in listening:
        barge = listening["barge_in_reaction_ms"]
        trials = barge["trials"]
        print(f"barge-in reaction: p50 {_fmt(barge['p50'])} ms, max {_fmt(barge['max'])} ms ({trials} trials)")
    if "tool_use" in listening:
        tools = listening["tool_use"]
        print(
            f"tool use: {tools['correct']} of {tools['commands']} commands right ({100 * tools['accuracy']:.0f} %), "
            f"routed by {tools['routed_by']}, mean routing {tools['mean_routing_ms']} ms"
        )
        for wrong in tools["wrong"]:
            print(f"  wrong: {wrong}")
    if "fallback" in listening:
        fb = listening["fallback"]
        print(
            f"fallback ({fb['first_token_deadline_s']:g} s first-token deadline): a dead cloud adds "
            f"{fb['dead_cloud_extra_ms']} ms, a known-offline one {fb['known_offline_extra_ms']} ms "
            f"over {fb['local_only_v2v_ms']} ms voice-to-voice"
        )
    if "wake_phrase" in listening:
        wake = listening["wake_phrase"]
        print(
            f"wake phrase: {wake['misses']} misses of {wake['with_phrase']}, "
            f"{wake['false_accepts']} false accepts of {wake['without_phrase']} "
            f"({wake['unrelated_speech_s']} s of unrelated speech)"
        )
    if "livekit_voice_to_voice_ms" in listening:
        room = listening["livekit_voice_to_voice_ms"]
        device = result["latency_ms"]["voice_to_voice"]
        print(
            f"through a LiveKit room: voice-to-voice p50 {_fmt(room['p50'])} ms, p95 {_fmt(room['p95'])} ms "
            f"({room['answered']} of {room['questions']} answered; device path p50 {_fmt(device['p50'])} ms)"
        )
    for error in result["errors"]:
        print(f"error: {error}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
