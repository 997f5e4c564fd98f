"""The satellite's wake-phrase cut on real speech: Piper says "Hey appliance, <request>", the real Whisper's
word times say where to cut, and what is left must be the request, all of it, without the phrase.

Run with `-s` for the cost of the word times next to a plain transcription of the same audio."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import numpy as np

from appliance.audio.frames import ENGINE_RATE, Int16Array
from appliance.audio.resample import resample
from appliance.voice.remote import wake_phrase_cutter
from tests.integration.speech_check import overlap, piper_speech, whisper, words

REQUESTS = [
    "what is the capital of France",
    "set a timer for five minutes",
    "turn on the kitchen light",
    "how many days are in a week",
    "what time is it",
    "play some music in the living room",
    "what is two plus two",
    "remind me to call mom tomorrow",
]
LEAD = np.zeros(int(0.3 * ENGINE_RATE), dtype=np.int16)


def spoken(models_dir: Path, text: str) -> Int16Array:
    return np.concatenate([LEAD, resample(piper_speech(models_dir, text), ENGINE_RATE).samples])


def test_the_cut_leaves_each_request_whole_and_no_wake_phrase(models_dir: Path) -> None:
    stt = whisper(models_dir)
    cut = wake_phrase_cutter(lambda: stt, "hey appliance")
    timed, plain, heard = [], [], []
    for request in REQUESTS:
        audio = spoken(models_dir, f"Hey appliance, {request}.")
        started = time.perf_counter()
        rest = asyncio.run(cut(audio))  # type: ignore[arg-type]
        timed.append(time.perf_counter() - started)
        started = time.perf_counter()
        stt.transcribe_sync(audio)
        plain.append(time.perf_counter() - started)
        assert len(rest) < len(audio), f"not cut: {request!r}"
        heard.append(stt.transcribe_sync(np.concatenate([LEAD, rest])).text)
    for request, text in zip(REQUESTS, heard, strict=True):
        assert "appliance" not in words(text), text
        assert overlap(request, text) >= 0.8, (request, text)  # one word of a request may be misheard
    whole = sum(overlap(r, t) == 1.0 for r, t in zip(REQUESTS, heard, strict=True))
    print(
        f"\nwake-phrase cut on {len(REQUESTS)} requests: word times p50 {1000 * statistics.median(timed):.0f} ms, "
        f"max {1000 * max(timed):.0f} ms; a plain transcription p50 {1000 * statistics.median(plain):.0f} ms; "
        f"every word kept in {whole} of {len(REQUESTS)}"
    )
