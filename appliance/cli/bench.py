"""`appliance bench`: runs the measures (`appliance.bench`) and prints them as a table or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from appliance.bench.run import QUESTIONS_DIR, run_bench
from appliance.cli.errors import EXIT_FAILURE, EXIT_OK, OperationalError
from appliance.config import AppConfig


async def bench_command(args: argparse.Namespace, config: AppConfig) -> int:
    questions = sorted(QUESTIONS_DIR.glob("*.wav"))
    if args.questions:
        questions = questions[: args.questions]
    if not questions:
        raise OperationalError(f"no benchmark questions in {QUESTIONS_DIR}")
    result = await run_bench(config, questions, frozenset(args.skip or ()), livekit=args.livekit, device=args.device)
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
    if "device_path" in listening:
        _print_device_path(listening["device_path"])
    for error in result["errors"]:
        print(f"error: {error}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _print_device_path(device: dict[str, Any]) -> None:
    print(f"device path, idle listening (echo cancellation on): {device['idle_cpu_percent_of_one_core']} % of one core")
    for setting, probe in device["latency"].items():
        if "error" in probe:
            print(f"device path, {setting} latency: {probe['error']}")
            continue
        reported, trip = probe["portaudio_ms"], probe["round_trip_ms"]
        v2v = probe.get("device_voice_to_voice_ms", {})
        print(
            f"device path, {setting} latency: PortAudio in {reported['input_ms']} ms + out {reported['output_ms']} ms "
            f"+ speaker buffer {reported['speaker_buffer_ms']} ms; measured round trip p50 {_fmt(trip['p50'])} ms "
            f"(max {_fmt(trip['max'])}); device voice-to-voice p50 {_fmt(v2v.get('p50'))} ms, "
            f"p95 {_fmt(v2v.get('p95'))} ms"
        )
