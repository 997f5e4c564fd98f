"""How many CPU threads each engine may use, so the cores are not oversubscribed.

STT runs alone (the LLM waits for its transcript), so it gets every core. The
LLM and TTS overlap (TTS speaks sentence one while the LLM writes sentence two),
so on four cores and more they split them. On two cores each gets both: the
first piece of text is on the critical path with nothing else running (measured
with `appliance bench` on a 2-core box, that cut llm_ttft from 150 to 77 ms p50),
and then the first audio is, while the LLM pauses (`LLM.yield_cpu`): Piper on
two threads made it in ~175 ms p50 against ~250 ms on one. Later pieces overlap
the LLM, but they are made while the first one plays. Three and four cores keep
one thread for TTS (not measured otherwise). VAD is tiny and runs on every
frame: one thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def usable_cores() -> int:
    """Cores this process may run on (respects taskset / cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ComputeBudget:
    cores: int
    vad: int
    stt: int
    llm: int
    tts: int

    @staticmethod
    def for_cores(cores: int = 0) -> ComputeBudget:
        """`cores` = 0 means all usable cores."""
        total = cores if cores > 0 else usable_cores()
        tts = 1 if 2 < total <= 4 else min(2, total)
        llm = max(1, total - tts) if total > 2 else total
        return ComputeBudget(cores=total, vad=1, stt=total, llm=llm, tts=tts)
