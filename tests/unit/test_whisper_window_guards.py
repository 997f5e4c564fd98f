"""The short-window decoder's window size and the guards that send degenerate output to the 30 s path."""

from __future__ import annotations

from appliance.providers.local.whisper_window import compression_ratio, repeats_ngram, window_frames


def test_window_is_clip_plus_margin_in_even_frames() -> None:
    assert window_frames(16_000 * 2, 16_000, margin_s=3.0) == 500
    assert window_frames(16_000 * 2 + 80, 16_000, margin_s=3.0) == 502


def test_window_has_a_floor_and_never_exceeds_thirty_seconds() -> None:
    assert window_frames(16_000, 16_000, margin_s=3.0, min_window_s=10.0) == 1000
    assert window_frames(16_000 * 29, 16_000, margin_s=3.0) == 3000


def test_an_utterance_said_again_is_a_repetition() -> None:
    assert repeats_ngram("What is 2 plus 2? What is 2 plus", n=3, times=2)
    assert not repeats_ngram("What is 2 plus 2?", n=3, times=2)


def test_repetition_ignores_case_and_punctuation() -> None:
    assert repeats_ngram("How do I? how, do i", n=3, times=2)


def test_looping_text_compresses_far_better_than_speech() -> None:
    assert compression_ratio("the cat sat on the mat " * 10) > 2.4
    assert compression_ratio("Remind me to call my sister at half past six.") < 2.4
    assert compression_ratio("") == 0.0
