"""The other commands on the real engines: say, console --text, bench, models, config, and KV reuse."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.audio.wav import read_wav
from appliance.providers.base import ChatMessage, LLMOptions
from appliance.providers.local.llama_llm import LlamaCppLLM
from tests.integration.conftest import Cli
from tests.integration.speech_check import overlap, transcribe


def test_say_writes_speech_that_transcribes_back(cli: Cli, tmp_path: Path, models_dir: Path) -> None:
    text = "The kitchen timer is done. Your tea is ready."
    result = cli("say", text, "--output", "said.wav")
    assert result.code == 0, result.stderr
    audio = read_wav(tmp_path / "said.wav")
    assert audio.sample_rate == 22050
    assert overlap(text, transcribe(models_dir, audio)) >= 0.8


def test_say_without_a_sound_card_or_output_is_a_clear_error(cli: Cli) -> None:
    result = cli("say", "hello", env={"PULSE_SERVER": "unix:/nonexistent", "AUDIODEV": "null"})
    if result.code == 0:  # this machine has a sound device after all
        return
    assert result.code == 1
    assert "--output" in result.stderr


def test_console_text_answers_each_line_and_records_turns(cli: Cli) -> None:
    result = cli("console", "--text", stdin="What is the capital of France?\nThank you!\n")
    assert result.code == 0, result.stderr
    replies = [line for line in result.stdout.splitlines() if line.startswith("agent> ")]
    assert len(replies) == 2 and all(len(r) > len("agent> ") for r in replies)
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [r["turn"] for r in records] == [1, 2]
    assert records[0]["user_text"] == "What is the capital of France?"
    assert records[0]["latency_ms"]["llm_ttft"] is not None


def test_bench_reports_percentiles_memory_and_cpu(cli: Cli) -> None:
    result = cli(
        "bench",
        "--questions",
        "2",
        "--json",
        *[
            "--skip",
            "wake",
            "--skip",
            "idle",
            "--skip",
            "barge",
            "--skip",
            "tools",
            "--skip",
            "fallback",
            "--skip",
            "stt",
            "--skip",
            "first",
            "--skip",
            "memory",
        ],
    )
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["turns"] == 2 and report["errors"] == []
    for name in ("end_of_turn", "stt_final", "llm_ttft", "tts_ttfb", "voice_to_voice"):
        assert report["latency_ms"][name]["p50"] is not None
        assert report["latency_ms"][name]["p95"] >= report["latency_ms"][name]["p50"]
    assert 100 < report["rss_mb"]["peak"] < 2000
    assert report["cpu"]["conversation_percent_of_one_core"] > 0


def test_models_list_shows_every_default_present_and_verified(cli: Cli) -> None:
    result = cli("models", "list")
    assert result.code == 0, result.stderr
    for name in ("silero-vad", "whisper-tiny.en", "smollm2-135m", "piper-joe-medium"):
        assert name in result.stdout
    assert "✗" not in "".join(line for line in result.stdout.splitlines() if "whisper-base" not in line)
    assert cli("models", "verify").code == 0


def test_config_prints_the_effective_config_with_env_overrides(cli: Cli) -> None:
    result = cli("config", env={"APPLIANCE_ENDPOINTING__MIN_SILENCE_MS": "450"})
    assert result.code == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["endpointing"]["min_silence_ms"] == 450
    assert config["llm"]["provider"] == ["local/smollm2-135m"]


def test_the_llm_reuses_its_kv_cache_across_turns(models_dir: Path) -> None:
    async def main() -> tuple[int, int, int]:
        llm = LlamaCppLLM(models_dir / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf", threads=2)
        messages = [ChatMessage("system", "You are brief. " * 20), ChatMessage("user", "Name a color.")]
        first = "".join([p async for p in llm.stream(messages, LLMOptions(max_tokens=12))])
        first_evaluated = llm.last_prompt_tokens_evaluated
        messages += [ChatMessage("assistant", first), ChatMessage("user", "Another one?")]
        _ = [p async for p in llm.stream(messages, LLMOptions(max_tokens=12))]
        second_evaluated = llm.last_prompt_tokens_evaluated
        system_tokens = llm.count_tokens("You are brief. " * 20)
        await llm.aclose()
        return first_evaluated, second_evaluated, system_tokens

    first, second, system_tokens = asyncio.run(main())
    assert first > system_tokens  # the whole first prompt was evaluated
    assert 0 < second < system_tokens  # the second only evaluated what was new


def test_run_without_a_sound_card_answers_the_bundled_question(cli: Cli, tmp_path: Path) -> None:
    from appliance.cli.devices import default_devices

    if default_devices().input is not None:
        return  # this machine has a sound card: `run` would use it
    result = cli("run", "--json")
    assert result.code == 0, result.stderr
    assert "no sound card found" in result.stderr
    (record,) = result.records()
    assert overlap("what is the capital of france", record["user_text"]) >= 0.8
    assert read_wav(tmp_path / "appliance-reply.wav").duration > 2.0


def test_bench_stt_holds_the_word_error_rate_of_the_thirty_second_path_at_a_fraction_of_its_time(cli: Cli) -> None:
    result = cli("bench", "--stt", "--json")
    assert result.code == 0, result.stderr
    stt = json.loads(result.stdout)["stt"]
    assert stt["model"] == "local/whisper-tiny.en" and stt["clips"] >= 50
    short, full = stt["short_window"], stt["full_window"]
    assert short["wer"] <= full["wer"]
    assert short["fallbacks"] <= stt["clips"] // 10
    # The same clips in alternating order: the ratio holds on a busy machine (about 0.3 here).
    assert short["p50_ms"] < 0.6 * full["p50_ms"]


def test_bench_stt_refuses_a_provider_that_is_not_a_local_whisper(cli: Cli) -> None:
    result = cli("bench", "--stt", "openai/whisper-1")
    assert result.code == 2
    assert "local Whisper" in result.stderr


def test_an_unknown_agent_is_a_usage_error_naming_the_known_ones(cli: Cli) -> None:
    result = cli("console", "--text", stdin="hi\n", env={"APPLIANCE_AGENT__NAME": "butler"})
    assert result.code == 2
    assert "butler" in result.stderr and "assistant" in result.stderr


def test_bench_reports_idle_cpu_and_barge_in_reaction(cli: Cli) -> None:
    skips = [arg for measure in ("wake", "tools", "fallback", "stt", "first", "memory") for arg in ("--skip", measure)]
    result = cli("bench", "--questions", "1", "--json", *skips)
    assert result.code == 0, result.stderr
    listening = json.loads(result.stdout)["listening"]
    assert 0 < listening["idle_cpu_percent_of_one_core"] < 50
    assert listening["barge_in_reaction_ms"]["trials"] == 3
    assert 0 < listening["barge_in_reaction_ms"]["max"] < 400


def test_bench_reports_memory_by_engine_and_first_audio_both_ways_and_how_well_each_is_heard(cli: Cli) -> None:
    skips = [arg for measure in ("wake", "tools", "idle", "barge", "fallback", "stt") for arg in ("--skip", measure)]
    result = cli("bench", "--questions", "1", "--json", *skips)
    assert result.code == 0, result.stderr
    memory = json.loads(result.stdout)["listening"]["memory_by_engine_mb"]
    assert memory["process_before_engines"] > 0
    engines = memory["engines"]
    assert set(engines) == {"vad", "stt", "llm", "tts"} and all(0 < engines[s]["warm"] < 400 for s in engines)
    assert engines["vad"]["warm"] < engines["llm"]["warm"]  # a 135M-parameter LLM outweighs the VAD
    first = json.loads(result.stdout)["listening"]["first_audio"]
    assert first["answers"] == 12
    for way in ("whole_sentence", "cut"):
        assert 0 < first[way]["first_audio_ms"]["p50"] <= first[way]["first_audio_ms"]["p95"]
        assert first[way]["word_error_rate"] <= 0.1  # the answers are heard back as said, cut or not
    assert first["cut"]["word_error_rate"] <= first["whole_sentence"]["word_error_rate"] + 0.05


def test_headless_run_loads_and_waits_until_terminated(models_dir: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "APPLIANCE_MODELS__DIR": str(models_dir), "APPLIANCE_AUDIO__INPUT": "none"}
    err = tmp_path / "err"
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run"], env=env, stderr=err.open("w"))
    try:
        deadline = time.monotonic() + 60
        while "engines ready" not in err.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bench_reports_what_a_dead_or_offline_cloud_costs(cli: Cli) -> None:
    skips = [
        arg for measure in ("wake", "tools", "idle", "barge", "stt", "first", "memory") for arg in ("--skip", measure)
    ]
    result = cli("bench", "--questions", "1", "--json", *skips)
    assert result.code == 0, result.stderr
    fallback = json.loads(result.stdout)["listening"]["fallback"]
    assert fallback["providers_used"] == ["local/smollm2-135m"]  # every turn was answered, locally
    assert len(fallback["dead_cloud_extra_ms"]) == 2 and len(fallback["known_offline_extra_ms"]) == 2
    # The dead cloud costs about its first-token deadline; a known-offline one costs far less.
    assert min(fallback["dead_cloud_extra_ms"]) > 400
    assert max(fallback["known_offline_extra_ms"]) < min(fallback["dead_cloud_extra_ms"])


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
def test_once_set_up_the_run_script_starts_without_any_network() -> None:
    """`scripts/run` begins with `scripts/setup`: on a box that boots offline it must not need the network."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["unshare", "--net", str(root / "scripts" / "setup")], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already verified" in done.stdout
