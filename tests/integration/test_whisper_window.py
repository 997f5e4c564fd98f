"""The short-window Whisper path on the real tiny.en model: same words as the 30 s path, silence
and noise stay empty, long utterances go through 30 s whole, and the prompt still biases."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.audio.wav import read_wav
from appliance.bench.stt_eval import SttBenchError, whisper_of
from appliance.bench.wer import normalized_words
from appliance.providers.cloud.openai_client import Endpoint
from appliance.providers.cloud.openai_stt import OpenAISTT
from appliance.providers.fallback import FallbackSTT
from appliance.providers.local.whisper_stt import WhisperSTT, WindowCounts
from appliance.providers.swappable import SwappableSTT
from tests.integration.conftest import DATA


@cache
def whisper(models_dir: Path) -> WhisperSTT:
    return WhisperSTT(models_dir / "whisper-tiny.en", threads=2)


def clip(name: str) -> Int16Array:
    return read_wav(DATA / name).samples


@pytest.mark.parametrize(
    "name",
    ["questions/q01.wav", "questions/q03.wav", "questions/q08.wav", "stt/s09-joe-slow.wav", "stt/s12-joe-fast.wav"],
)
def test_short_window_gives_the_words_of_the_thirty_second_path(models_dir: Path, name: str) -> None:
    stt = whisper(models_dir)
    stt.counts = WindowCounts()
    short = stt.transcribe_sync(clip(name)).text
    full = stt.transcribe_full_window_sync(clip(name)).text
    assert stt.counts == WindowCounts(short=1), "decoded by the short window, no fallback"
    assert normalized_words(short) == normalized_words(full)


@pytest.mark.parametrize("name", ["questions/q01.wav", "questions/q04.wav", "stt/s09-joe-slow.wav"])
def test_word_times_over_the_short_window_agree_with_the_thirty_second_alignment(models_dir: Path, name: str) -> None:
    """Where a satellite cuts the wake phrase off comes from these times; the 30 s path costs ~3x as much."""
    from faster_whisper import WhisperModel

    stt = whisper(models_dir)
    assert stt._short is not None
    short = stt._short.timed_words(clip(name).astype(np.float32) / 32768, "en")
    assert short is not None, "aligned over the short window, no fallback"
    model: WhisperModel = stt._model
    segments, _ = model.transcribe(
        clip(name).astype(np.float32) / 32768, language="en", beam_size=1, word_timestamps=True, vad_filter=False
    )
    full = [w for segment in segments for w in segment.words or []]
    assert [normalized_words(w.text) for w in short] == [normalized_words(w.word) for w in full]
    for mine, theirs in zip(short, full, strict=True):
        assert abs(mine.start - theirs.start) <= 0.2 and abs(mine.end - theirs.end) <= 0.2, (mine, theirs)


def test_silence_gives_an_empty_transcript(models_dir: Path) -> None:
    assert whisper(models_dir).transcribe_sync(np.zeros(2 * ENGINE_RATE, dtype=np.int16)).text == ""


@pytest.mark.parametrize("seconds", [0.5, 1.5, 3.0])
def test_noise_gives_an_empty_transcript(models_dir: Path, seconds: float) -> None:
    noise = np.random.default_rng(7).normal(0, 1500, int(seconds * ENGINE_RATE)).astype(np.int16)
    assert whisper(models_dir).transcribe_sync(noise).text == ""


def test_an_utterance_over_25_seconds_goes_through_the_thirty_second_path_whole(models_dir: Path) -> None:
    gap = np.zeros(ENGINE_RATE, dtype=np.int16)
    questions = sorted((DATA / "questions").glob("q*.wav"))
    parts = [piece for path in questions for piece in (read_wav(path).samples, gap)]
    audio = np.concatenate(parts)
    assert len(audio) > 25 * ENGINE_RATE
    stt = whisper(models_dir)
    stt.counts = WindowCounts()
    heard = set(normalized_words(stt.transcribe_sync(audio).text))
    assert stt.counts == WindowCounts(full=1)
    for name in ("france", "week", "sky", "yellow", "hot", "monday", "cats", "tea", "water"):
        assert name in heard, f"{name!r} missing from the long transcript"


def test_the_prompt_biases_toward_the_wake_phrase(models_dir: Path) -> None:
    """espeak-ng's "hey appliance, tell me a joke" (made with `espeak-ng -v en-us+m3 -s 155`):
    tiny.en hears "hey, clients" unless the wake phrase is in the prompt."""
    stt = whisper(models_dir)
    stt.counts = WindowCounts()
    audio = clip("hey_appliance_espeak.wav")
    plain = normalized_words(stt.transcribe_sync(audio).text)
    prompted = normalized_words(stt.transcribe_sync(audio, prompt="Hey appliance.").text)
    assert stt.counts == WindowCounts(short=2)
    assert "appliance" not in plain
    assert prompted == ["hey", "appliance", "tell", "me", "a", "joke"]


def test_a_prompt_does_not_change_clear_speech(models_dir: Path) -> None:
    stt = whisper(models_dir)
    audio = clip("questions/q02.wav")
    assert normalized_words(stt.transcribe_sync(audio, prompt="Hey appliance.").text) == normalized_words(
        stt.transcribe_sync(audio).text
    )


def test_the_bench_finds_the_whisper_behind_a_swappable_slot_and_a_fallback_chain(models_dir: Path) -> None:
    stt = whisper(models_dir)
    chain = FallbackSTT(
        [OpenAISTT(Endpoint("openai", "http://127.0.0.1:9", None), "whisper-1", "openai/whisper-1"), stt]
    )
    assert whisper_of(SwappableSTT(chain)) is stt
    with pytest.raises(SttBenchError, match="local Whisper"):
        whisper_of(chain.children[0])
