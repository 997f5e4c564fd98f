"""The first audio on real engines: llama.cpp pauses between tokens while Piper makes the first piece (and not
for good), and a piece cut mid-sentence ends in a short pause, not in the silence of a sentence end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from appliance.audio.frames import AudioChunk
from appliance.providers.base import ChatMessage, LLMOptions
from appliance.providers.local.llama_llm import PAUSE_CEILING_S, LlamaCppLLM
from tests.integration.speech_check import piper_speech

STORY = [ChatMessage("user", "Tell me a long story about a cat who lives on a boat.")]


def token_times(llm: LlamaCppLLM, resume_after_s: float | None) -> tuple[float, float]:
    """Yield after the first token (resume `resume_after_s` later, if at all): the longest wait between two
    tokens, and when the token after it came, counted from the yield."""

    async def run() -> tuple[float, float]:
        times: list[float] = []
        yielded_at = 0.0
        async for _piece in llm.stream(STORY, LLMOptions(max_tokens=40, temperature=0.0)):
            times.append(time.monotonic())
            if len(times) == 1:
                llm.yield_cpu()
                yielded_at = times[0]
                if resume_after_s is not None:
                    asyncio.get_running_loop().call_later(resume_after_s, llm.resume_cpu)
        gaps = np.diff(times)
        longest = int(np.argmax(gaps))
        return float(gaps[longest]), times[longest + 1] - yielded_at

    return asyncio.run(run())


def test_the_llm_pauses_for_the_first_audio_until_resumed_or_the_ceiling(models_dir: Path) -> None:
    llm = LlamaCppLLM(models_dir / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf", threads=2)
    gap, next_token_s = token_times(llm, resume_after_s=0.4)
    assert gap >= 0.3, "no pause after yield_cpu"
    assert 0.35 <= next_token_s <= 0.4 + 0.25, "the next token did not follow the resume"
    gap, next_token_s = token_times(llm, resume_after_s=None)
    assert PAUSE_CEILING_S - 0.1 <= next_token_s <= PAUSE_CEILING_S + 0.5, "a pause without resume must end"
    gap, _ = token_times(llm, resume_after_s=0.0)  # a new request starts unpaused, whatever the last one did
    assert gap < 0.3


def trailing_quiet_s(audio: AudioChunk) -> float:
    loud = np.flatnonzero(np.abs(audio.samples.astype(np.int32)) > 328)
    return (len(audio.samples) - 1 - int(loud[-1])) / audio.sample_rate


def test_a_piece_cut_mid_sentence_ends_in_a_short_pause(models_dir: Path) -> None:
    cut, sentence = (
        piper_speech(models_dir, "The capital of France"),
        piper_speech(models_dir, "The capital of France."),
    )
    assert trailing_quiet_s(cut) <= 0.06
    assert trailing_quiet_s(sentence) >= 0.1  # a sentence end keeps its silence
    assert cut.duration >= 0.8  # the words are all there
