"""Bad input gets a clear one-line error (or is converted) and the appliance keeps its footing."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frames import AudioChunk
from appliance.audio.resample import resample
from appliance.audio.wav import encode_wav, read_wav, write_wav
from tests.fakes import join, silence
from tests.integration.conftest import DATA, Cli
from tests.integration.speech_check import overlap


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("appliance: error: ")
    return lines[0]


def stereo_wav_bytes(mono: AudioChunk) -> bytes:
    frames = np.repeat(mono.samples[:, None], 2, axis=1).astype("<i2").tobytes()
    rate = mono.sample_rate
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(frames),
        b"WAVE",
        b"fmt ",
        16,
        1,
        2,
        rate,
        rate * 4,
        4,
        16,
        b"data",
        len(frames),
    )
    return header + frames


@pytest.mark.parametrize(("rate", "stereo"), [(8000, False), (44100, True), (48000, False)])
def test_other_rates_and_stereo_are_converted(cli: Cli, tmp_path: Path, rate: int, stereo: bool) -> None:
    audio = resample(join(silence(0.4), read_wav(DATA / "questions" / "q01.wav"), silence(1.0)), rate)
    data = stereo_wav_bytes(audio) if stereo else encode_wav(audio)
    (tmp_path / "in.wav").write_bytes(data)
    result = cli("run", "--input", "in.wav", "--output", "out.wav", "--json", "--fast")
    assert result.code == 0, result.stderr
    (record,) = result.records()
    assert overlap("what is the capital of france", record["user_text"]) >= 0.6, record["user_text"]


@pytest.mark.parametrize("seconds", [0.0, 3.0])
def test_empty_or_silent_input_makes_no_turn_and_exits_0(cli: Cli, tmp_path: Path, seconds: float) -> None:
    write_wav(tmp_path / "in.wav", silence(seconds))
    result = cli("run", "--input", "in.wav", "--output", "out.wav", "--json", "--fast")
    assert result.code == 0, result.stderr
    assert result.records() == []
    assert read_wav(tmp_path / "out.wav").duration == pytest.approx(seconds, abs=0.001)


def test_truncated_wav_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    data = (DATA / "questions" / "q01.wav").read_bytes()
    (tmp_path / "in.wav").write_bytes(data[: len(data) // 2])
    result = cli("run", "--input", "in.wav", "--output", "out.wav")
    assert result.code == 2
    assert "truncated" in one_line_error(result.stderr)
    assert not (tmp_path / "out.wav").exists()


def test_a_file_that_is_not_a_wav_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "in.wav").write_text("this is not audio\n")
    result = cli("run", "--input", "in.wav", "--output", "out.wav")
    assert result.code == 2
    assert "not a WAV file" in one_line_error(result.stderr)


def test_a_missing_input_file_is_a_one_line_error(cli: Cli) -> None:
    result = cli("run", "--input", "nope.wav", "--output", "out.wav")
    assert result.code == 2
    assert "nope.wav" in one_line_error(result.stderr)


def test_a_missing_model_names_the_fetch_command(cli: Cli, tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", silence(1.0))
    result = cli("run", "--input", "in.wav", "--output", "out.wav", env={"APPLIANCE_MODELS__DIR": "empty-store"})
    assert result.code == 1
    assert "appliance models fetch" in one_line_error(result.stderr)


def test_a_corrupted_model_fails_verify_and_names_the_file(cli: Cli, tmp_path: Path, models_dir: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(models_dir / "silero-vad", store / "silero-vad")
    model = store / "silero-vad" / "silero_vad.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    result = cli("models", "verify", "silero-vad", env={"APPLIANCE_MODELS__DIR": str(store)})
    assert result.code == 1
    assert "silero_vad.onnx" in result.stderr and "corrupted" in result.stderr


def test_an_unknown_config_key_names_the_key(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[endpointing]\nmin_silence = 300\n")
    result = cli("run", "--config", "bad.toml", "--input", "x.wav", "--output", "y.wav")
    assert result.code == 2
    assert "endpointing.min_silence" in one_line_error(result.stderr)


def test_an_unknown_provider_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", silence(0.5))
    result = cli("run", "--input", "in.wav", "--output", "out.wav", env={"APPLIANCE_LLM__PROVIDER": '"local/gpt-9"'})
    assert result.code == 2
    assert "local/gpt-9" in one_line_error(result.stderr)


@pytest.mark.parametrize("where", ["a-folder", "in.wav/out.wav"])
def test_an_output_that_cannot_be_written_is_refused_before_the_conversation_runs(
    cli: Cli, tmp_path: Path, where: str
) -> None:
    write_wav(tmp_path / "in.wav", read_wav(DATA / "questions" / "q01.wav"))
    (tmp_path / "a-folder").mkdir()
    result = cli("run", "--input", "in.wav", "--output", where, env={"APPLIANCE_MODELS__DIR": "empty-store"})
    # No model store: had the conversation started, the error would name the missing models instead.
    assert result.code == 2 and where.split("/")[0] in one_line_error(result.stderr), result.stderr
