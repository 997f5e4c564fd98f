"""`appliance bench`: runs the measures (`appliance.bench`) and prints them as a table or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from appliance.bench.run import QUESTIONS_DIR, BenchError, run_bench
from appliance.bench.stt_eval import SttBenchError, stt_bench_alone
from appliance.cli.errors import EXIT_FAILURE, EXIT_OK, OperationalError, UsageError
from appliance.config import AppConfig


async def bench_command(args: argparse.Namespace, config: AppConfig) -> int:
    if (args.bridged or args.jitter is not None) and args.fleet is None:
        raise UsageError("--bridged and --jitter go with --fleet N")
    if args.fleet is not None:
        from appliance.cli.bench_fleet import fleet_bench_command

        return await fleet_bench_command(args)
    try:
        if args.stt is not None:
            return await _stt_only(args, config)
        return await _whole(args, config)
    except (BenchError, SttBenchError) as exc:
        raise OperationalError(str(exc)) from None


async def _stt_only(args: argparse.Namespace, config: AppConfig) -> int:
    descriptor = args.stt or next((d for d in config.stt.provider if d.startswith("local/whisper")), "")
    if not descriptor.startswith("local/whisper"):
        raise UsageError("bench --stt: give a local Whisper descriptor (e.g. local/whisper-tiny.en)")
    result = await stt_bench_alone(descriptor, config.models.dir, config.compute.threads, config.stt.language)
    if args.json:
        print(json.dumps({"stt": result}, indent=2))
    else:
        _print_stt(result)
    return EXIT_OK


async def _whole(args: argparse.Namespace, config: AppConfig) -> int:
    questions = sorted(QUESTIONS_DIR.glob("*.wav"))
    if args.questions:
        questions = questions[: args.questions]
    if not questions:
        raise OperationalError(f"no benchmark questions in {QUESTIONS_DIR}")
    if args.turns > 0:
        questions = [questions[turn % len(questions)] for turn in range(args.turns)]
    result = await run_bench(config, questions, frozenset(args.skip or ()), livekit=args.livekit, wyoming=args.wyoming)
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
        raced = fb["hung_cloud_raced"]
        print(
            f"a cloud that never answers, raced after {raced['race_after_s']:g} s "
            f"({raced['first_token_deadline_s']:g} s deadline): voice-to-voice {raced['v2v_ms']} ms, "
            f"{raced['extra_ms']} ms over local alone; answered by {sorted(set(raced['won_by'])) or 'nobody raced'}"
        )
    if "memory_by_engine_mb" in listening:
        memory = listening["memory_by_engine_mb"]
        parts = [
            f"{stage} {v['warm']}" if "warm" in v else f"{stage} ({v['error']})"
            for stage, v in memory["engines"].items()
        ]
        print(
            f"memory by engine (each alone, warmed up, MB over {memory['process_before_engines']} MB "
            f"of Python and imports): {', '.join(parts)}"
        )
    if "first_audio" in listening:
        first = listening["first_audio"]
        ways = [(w, first[k]) for w, k in (("whole first sentence", "whole_sentence"), ("first piece cut", "cut"))]
        print(
            f"first audio ({first['answers']} answers, TTS alone): "
            + "; ".join(
                f"{w} p50 {_fmt(v['first_audio_ms']['p50'])} / p95 {_fmt(v['first_audio_ms']['p95'])} ms, "
                f"heard back with {100 * v['word_error_rate']:.1f} % WER"
                for w, v in ways
            )
        )
    if "stt" in listening:
        _print_stt(listening["stt"])
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
    if "wyoming" in listening:
        _print_wyoming(listening["wyoming"], result["latency_ms"])
    for error in result["errors"]:
        print(f"error: {error}")


def _print_wyoming(wyoming: dict[str, Any], device: dict[str, Any]) -> None:
    asr, tts = wyoming["asr_end_of_audio_to_transcript_ms"], wyoming["tts_request_to_first_chunk_ms"]
    print(
        f"wyoming asr: audio-stop to transcript p50 {_fmt(asr['p50'])} ms, max {_fmt(asr['max'])} ms "
        f"({asr['early_transcripts_used']} of {asr['requests']} started in the {wyoming['end_silence_s']:g} s "
        f"end silence; {_fmt(wyoming['asr_transcribed_at_audio_stop_ms']['p50'])} ms if transcribed at audio-stop; "
        f"WER {wyoming['asr_word_error_rate']}); device stt_final p50 {_fmt(device['stt_final']['p50'])} ms"
    )
    print(
        f"wyoming tts: synthesize to first audio chunk p50 {_fmt(tts['p50'])} ms, max {_fmt(tts['max'])} ms "
        f"({tts['requests']} replies); device tts_ttfb p50 {_fmt(device['tts_ttfb']['p50'])} ms"
    )


def _print_stt(stt: dict[str, Any]) -> None:
    short, full = stt["short_window"], stt["full_window"]
    print(f"speech-to-text ({stt['model']}, {stt['clips']} held-out clips, {stt['audio_s']} s of speech):")
    print(f"{'  path':<16}{'p50 ms':>8}{'p95 ms':>8}{'WER %':>8}")
    for name, path in (("  30 s window", full), ("  short window", short)):
        print(f"{name:<16}{_fmt(path['p50_ms']):>8}{_fmt(path['p95_ms']):>8}{100 * path['wer']:>8.1f}")
    print(
        f"  short window: {short['short']} decoded short, {short['fallbacks']} fell back to 30 s, {short['full']} long"
    )
    for diff in stt["differing"]:
        print(f"  {diff['clip']}: 30 s {diff['full']!r} / short {diff['short']!r}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
