"""Word error rate: word-level edit distance over normalized text.

Both sides are normalized the way the tool router reads speech (lower case, no
punctuation, numbers as digits), so "twenty five" and "25" count as the same words
and only recognition errors are counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from appliance.agents.spoken import normalize


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions turning `reference` into `hypothesis` (Levenshtein on words)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (ref_word != hyp_word),  # substitution or match
                )
            )
        previous = current
    return previous[-1]


def normalized_words(text: str) -> list[str]:
    return normalize(text).split()


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """Errors over reference words for (reference, hypothesis) pairs, pooled over the set."""
    errors = words = 0
    for reference, hypothesis in pairs:
        ref = normalized_words(reference)
        errors += word_errors(ref, normalized_words(hypothesis))
        words += len(ref)
    return errors / words if words else 0.0
