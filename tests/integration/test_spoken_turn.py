"""A spoken question through the real pipeline: VAD, Whisper, SmolLM2, Piper."""

from __future__ import annotations

from pathlib import Path

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.wav import read_wav, write_wav
from tests.fakes import join, silence
from tests.integration.conftest import DATA, Cli
from tests.integration.speech_check import audible, onset, overlap, transcribe


def question(name: str = "q02") -> AudioChunk:
    return read_wav(DATA / "questions" / f"{name}.wav")


def test_a_spoken_question_is_answered_with_audio_that_says_the_reply(
    cli: Cli, tmp_path: Path, models_dir: Path
) -> None:
    write_wav(tmp_path / "in.wav", join(silence(0.5), question("q02"), silence(1.0)))
    result = cli("run", "--input", "in.wav", "--output", "out.wav", "--json", "--fast")
    assert result.code == 0, result.stderr
    (record,) = result.records()
    assert overlap("How many days are in a week?", record["user_text"]) >= 0.8
    assert record["agent_text"].strip()
    assert record["providers"] == {
        "stt": "local/whisper-tiny.en",
        "llm": "local/smollm2-135m",
        "tts": "local/piper-joe-medium",
    }
    out = read_wav(tmp_path / "out.wav")
    reply_audio = AudioChunk(out.samples[int((0.5 + question().duration) * out.sample_rate) :], out.sample_rate)
    heard = transcribe(models_dir, reply_audio)
    assert overlap(record["agent_text"], heard) >= 0.6, (record["agent_text"], heard)


def test_real_time_run_fills_every_latency_field(cli: Cli, tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", join(silence(0.5), question("q04"), silence(0.5)))
    result = cli("run", "--input", "in.wav", "--output", "out.wav", "--json")
    assert result.code == 0, result.stderr
    (record,) = result.records()
    latency = record["latency_ms"]
    assert all(isinstance(latency[k], int) for k in latency), latency
    assert 300 <= latency["end_of_turn"] <= 400
    assert latency["end_of_turn"] <= latency["voice_to_voice"] < 5000
    out = read_wav(tmp_path / "out.wav")
    assert out.duration > 0.5 + question("q04").duration  # the reply ran past the end of the input


def test_barge_in_stops_the_agents_voice_within_200_ms(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "long.toml"
    config.write_text(
        "[agent]\n"
        'instructions = "You are a storyteller. Always tell a long story of five sentences or more."\n'
        "[llm]\nmax_tokens = 160\n"
    )
    q = question("q08")
    interruption = read_wav(DATA / "interruption.wav")
    # Fast mode: the agent's reply starts right after the turn decision (about 0.35 s after the question),
    # so 1.5 s after the question the agent is talking; the interruption begins then.
    lead = 0.5
    barge_start = lead + q.duration + 1.5
    audio = join(silence(lead), q, silence(1.5), interruption, silence(0.5))
    write_wav(tmp_path / "in.wav", audio)
    result = cli("run", "--config", str(config), "--input", "in.wav", "--output", "out.wav", "--json", "--fast")
    assert result.code == 0, result.stderr
    records = result.records()
    assert records[0]["interrupted"] is True, records
    voice_onset = barge_start + onset(interruption)
    out = read_wav(tmp_path / "out.wav")
    assert audible(out, voice_onset - 0.4, voice_onset), "the agent was not speaking when interrupted"
    assert not audible(out, voice_onset + 0.2, voice_onset + 1.0), "the agent kept talking over the user"
    assert len(records) == 2 and records[1]["interrupted"] is False
    assert overlap("stop wait a second i have another question", records[1]["user_text"]) >= 0.5
    assert out.sample_rate == ENGINE_RATE


def test_whisper_base_the_multilingual_option_transcribes_too(cli: Cli, tmp_path: Path, models_dir: Path) -> None:
    if not (models_dir / "whisper-base" / "model.bin").exists():
        result = cli("models", "fetch", "whisper-base")
        assert result.code == 0, result.stderr
    write_wav(tmp_path / "in.wav", join(silence(0.5), question("q01"), silence(1.0)))
    result = cli(
        "run",
        "--input",
        "in.wav",
        "--output",
        "out.wav",
        "--json",
        "--fast",
        env={"APPLIANCE_STT__PROVIDER": '"local/whisper-base:en"'},
    )
    assert result.code == 0, result.stderr
    (record,) = result.records()
    assert record["providers"]["stt"] == "local/whisper-base:en"
    assert overlap("what is the capital of france", record["user_text"]) >= 0.8
