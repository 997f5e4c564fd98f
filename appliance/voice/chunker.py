"""Cutting the LLM's token stream into pieces TTS can speak while the LLM goes on.

A piece ends at a sentence end (. ! ? ; : or a newline) followed by white space.
The first piece may end earlier, at a comma after two words or more ("Of course,"),
so the first audio comes sooner: Piper makes a whole piece before its first sample,
in time roughly proportional to its length (the bench's `tts_ttfb` shows it).
Decimals ("3.5") and common abbreviations ("Dr.") do not end a sentence.
Markdown decoration is dropped: it is not meant to be heard.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "approx", "jr", "sr"})
_MARKDOWN = re.compile(r"[*_#`>|~]+")
_BOUNDARY = re.compile(r"([.!?;:]+[\"')\]]*)(\s+)|\n+")


def clean_for_speech(text: str) -> str:
    text = _MARKDOWN.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


class SentenceChunker:
    def __init__(self, first_piece_min_words: int = 2, min_chars: int = 2) -> None:
        self.first_piece_min_words = first_piece_min_words
        self.min_chars = min_chars
        self._buffer = ""
        self._emitted = 0

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
            comma = self._buffer.find(", ")
            while comma != -1:
                if len(self._buffer[:comma].split()) >= self.first_piece_min_words:
                    return comma + 2
                comma = self._buffer.find(", ", comma + 1)
        return None

    def _is_false_end(self, dot_index: int) -> bool:
        if self._buffer[dot_index] != ".":
            return False
        before = self._buffer[:dot_index]
        word = before.split()[-1].lower().strip("(\"'") if before.split() else ""
        return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word != "a" and word != "i")
