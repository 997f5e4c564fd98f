"""Word error rate as the STT bench counts it."""

from __future__ import annotations

from appliance.bench.wer import word_error_rate, word_errors


def test_identical_words_have_no_errors() -> None:
    assert word_errors(["set", "a", "timer"], ["set", "a", "timer"]) == 0


def test_substitution_deletion_and_insertion_each_count_one() -> None:
    assert word_errors(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert word_errors(["a", "b", "c"], ["a", "c"]) == 1
    assert word_errors(["a", "b", "c"], ["a", "b", "c", "d"]) == 1
    assert word_errors(["a", "b"], []) == 2
    assert word_errors([], ["a"]) == 1


def test_case_punctuation_and_spelled_numbers_are_not_errors() -> None:
    assert word_error_rate([("Set a timer for twenty five minutes.", "set a timer for 25 minutes")]) == 0.0


def test_rate_is_pooled_over_reference_words() -> None:
    pairs = [("one two three four", "one two three four"), ("alpha beta", "alpha gamma beta delta")]
    assert word_error_rate(pairs) == 2 / 6
