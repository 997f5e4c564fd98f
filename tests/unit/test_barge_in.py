"""The barge-in judge: pause at once, interrupt on sustained speech, resume after a cough."""

from __future__ import annotations

import numpy as np

from appliance.config import InterruptionConfig
from appliance.voice.barge_in import BargeInJudge, Verdict

FRAME = np.zeros(512, dtype=np.int16)
STEP = 0.032


def run(voiced: list[bool], confirmed_after: int = 2, **options: object) -> list[Verdict]:
    judge = BargeInJudge(InterruptionConfig(**options))  # type: ignore[arg-type]
    verdicts = []
    for index, is_voiced in enumerate(voiced):
        start = index * STEP
        confirmed = is_voiced and index >= confirmed_after
        verdicts.append(judge.update(FRAME, start, start + STEP, is_voiced, confirmed, [FRAME]))
    return verdicts


def test_the_first_voiced_frame_pauses_and_sustained_speech_interrupts() -> None:
    verdicts = run([True] * 10, min_speech_ms=250)
    assert verdicts[0] is Verdict.PAUSE
    assert verdicts.index(Verdict.INTERRUPT) == 7  # 8 frames = 256 ms >= 250 ms
    assert all(v is Verdict.NOTHING for v in verdicts[1:7])


def test_a_cough_pauses_then_resumes_after_the_quiet_time() -> None:
    verdicts = run([True, True, False] + [False] * 14, min_speech_ms=250, resume_after_ms=400)
    assert verdicts[0] is Verdict.PAUSE
    assert Verdict.INTERRUPT not in verdicts
    assert verdicts.index(Verdict.RESUME) == 14  # quiet from 64 ms; 400 ms later


def test_speech_that_is_never_confirmed_by_vad_does_not_interrupt() -> None:
    assert Verdict.INTERRUPT not in run([True] * 20, confirmed_after=99)


def test_disabled_interruption_never_pauses() -> None:
    assert set(run([True] * 20, enabled=False)) == {Verdict.NOTHING}


def test_the_candidate_keeps_the_preroll_and_its_frames_for_the_next_turn() -> None:
    judge = BargeInJudge(InterruptionConfig())
    judge.update(FRAME, 0.0, STEP, True, False, [FRAME, FRAME])
    judge.update(FRAME, STEP, 2 * STEP, True, True, [FRAME])
    candidate = judge.take()
    assert candidate is not None and candidate.start == 0.0 and len(candidate.frames) == 3
    assert judge.take() is None
