"""Cutting the LLM's token stream into pieces TTS can speak while the LLM goes on.

A piece ends at a sentence end (. ! ? ; : or a newline) followed by white space.
The first piece may end earlier, so the first audio comes sooner: Piper makes a
whole piece before its first sample, in time proportional to its length (~0.13 s
per second of speech on one core here), and the first piece is the one the user
waits for. It ends at a comma after two words or more ("Of course,"), or at a
phrase boundary after three: before a verb or a conjunction ("The boiling
point of water | is 100 degrees"), where a speaker may pause anyway.
Later pieces are whole sentences: they are made while the first one plays.
Decimals ("3.5") and common abbreviations ("Dr.") do not end a sentence.
Markdown decoration is dropped: it is not meant to be heard.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "approx", "jr", "sr"})
_MARKDOWN = re.compile(r"[*_#`>|~]+")
_BOUNDARY = re.compile(r"([.!?;:]+[\"')\]]*)(\s+)|\n+")
_PHRASE_OPENERS = frozenset(
    {
        *("is", "are", "was", "were", "will", "would", "can", "could", "should", "must", "might", "may"),
        *("has", "have", "had", "does", "did"),
        *("and", "but", "or", "so", "because", "which", "who", "where", "when", "while", "if", "than"),
    }
)
"""Words a first piece may stop before: a verb after its subject, a conjunction. Not prepositions ("the fun
fact | about cats" breaks a noun phrase) nor articles."""
_WORD_THEN_BREAK = re.compile(r"\s+([A-Za-z']+)(?=\s)")
"""A whole word with more to come after it: "so." ends a sentence, nothing is cut before it."""


def clean_for_speech(text: str) -> str:
    text = _MARKDOWN.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


class SentenceChunker:
    def __init__(self, first_piece_min_words: int = 2, min_chars: int = 2, first_phrase_min_words: int = 3) -> None:
        """`first_piece_min_words`: words before a comma may end the first piece; `first_phrase_min_words`:
        words before a phrase boundary may (0: never cut there)."""
        self.first_piece_min_words = first_piece_min_words
        self.first_phrase_min_words = first_phrase_min_words
        self.min_chars = min_chars
        self._buffer = ""
        self._emitted = 0

    @classmethod
    def whole_sentences(cls) -> SentenceChunker:
        """No early first piece: for speech nobody is waiting on (a file written by `say`)."""
        return cls(first_piece_min_words=10_000, first_phrase_min_words=0)

    def push(self, text: str) -> list[str]:
        self._buffer += text
        pieces: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
            self._emit(piece, pieces)
        return pieces

    def flush(self) -> list[str]:
        """Whatever is left when the LLM is done, sentence end or not."""
        pieces: list[str] = []
        piece, self._buffer = self._buffer, ""
        self._emit(piece, pieces)
        return pieces

    def _emit(self, piece: str, into: list[str]) -> None:
        spoken = clean_for_speech(piece)
        if len(re.sub(r"\W", "", spoken)) >= self.min_chars or (spoken and any(c.isalnum() for c in spoken)):
            into.append(spoken)
            self._emitted += 1

    def _find_cut(self) -> int | None:
        for match in _BOUNDARY.finditer(self._buffer):
            if match.group(1) and self._is_false_end(match.start()):
                continue
            return match.end()
        if self._emitted == 0:
            return self._first_piece_cut()
        return None

    def _first_piece_cut(self) -> int | None:
        """Where the first piece may end before its sentence does: the earliest comma or phrase boundary with
        enough words before it. A boundary is known once the word after it is whole (" is" may be " island")."""
        cuts = []
        comma = self._buffer.find(", ")
        while comma != -1:
            if len(self._buffer[:comma].split()) >= self.first_piece_min_words:
                cuts.append(comma + 2)
                break
            comma = self._buffer.find(", ", comma + 1)
        if self.first_phrase_min_words > 0:
            for match in _WORD_THEN_BREAK.finditer(self._buffer):
                before = self._buffer[: match.start()]
                if match.group(1).lower() in _PHRASE_OPENERS and len(before.split()) >= self.first_phrase_min_words:
                    if before.rstrip()[-1:].isalnum():  # "..., and" is the comma's cut
                        cuts.append(match.start() + 1)
                    break
        return min(cuts) if cuts else None

    def _is_false_end(self, dot_index: int) -> bool:
        if self._buffer[dot_index] != ".":
            return False
        before = self._buffer[:dot_index]
        word = before.split()[-1].lower().strip("(\"'") if before.split() else ""
        return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word != "a" and word != "i")
