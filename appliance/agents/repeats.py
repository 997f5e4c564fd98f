"""Keeping the LLM from saying again what the user just heard.

A tool's result spoken as it is ("Your timer is set for 5 minutes."), a tool's own line or a filler
is already out when the LLM writes the rest of the reply, and models like to restate it. The prompt
asks them not to; this makes sure: a sentence of the LLM's that only repeats something said in
this turn is dropped before it reaches TTS.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from appliance.agents.spoken import normalize

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def repeats(sentence: str, said: Sequence[str]) -> bool:
    """Most of the sentence's words (4 in 5) are in one thing already said."""
    words = normalize(sentence).split()
    if not words:
        return False
    for earlier in said:
        known = set(normalize(earlier).split())
        if sum(w in known for w in words) >= 0.8 * len(words):
            return True
    return False


async def without_repeats(pieces: AsyncIterator[str], said: Sequence[str]) -> AsyncIterator[str]:
    """The pieces, a sentence at a time, minus the sentences that repeat `said` (read as it grows)."""
    buffer = ""
    async for piece in pieces:
        buffer += piece
        *whole, buffer = _SENTENCE_END.split(buffer)
        for sentence in whole:
            if not repeats(sentence, said):
                yield sentence + " "
    if buffer.strip() and not repeats(buffer, said):
        yield buffer
