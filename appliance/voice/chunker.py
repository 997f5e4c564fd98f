"""Cutting the LLM's token stream into pieces TTS can speak while the LLM goes on.

A piece ends at a sentence end (. ! ? ; : or a newline) followed by white space.
The first piece may end earlier, so the first audio comes sooner: Piper makes a
whole piece before its first sample, in time proportional to its length (~0.13 s
per second of speech on one core here), and the first piece is the one the user
waits for. It ends at a comma after two words or more ("Of course,"), or at a
phrase boundary after three: before a verb or a conjunction ("The boiling
point of water | is 100 degrees"), where a speaker may pause anyway.
Later pieces are whole sentences, made while the first one plays, unless a sentence runs past
`max_piece_words`: then it is spoken in parts cut at its last comma or phrase boundary in reach
(or, with none, after that many words). Piper's memory grows with the longest piece it has made and
is kept (its onnxruntime arena): ~18 MB per second of speech here, so a 45-word sentence cost 164 MB
and a 15-word one 45 MB.
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
        *("and", "but", "or", "so", "because", "which", "who", "where", "when", "while", "if", "than", "until"),
    }
)
"""Words a first piece may stop before: a verb after its subject, a conjunction. Not prepositions ("the fun
fact | about cats" breaks a noun phrase) nor articles."""
_CLAUSE_OPENERS = frozenset({"but", "so", "because", "which", "who", "where", "when", "while", "if", "than", "until"})
"""The phrase openers that open a clause: where a long sentence without a comma is best split."""
_WHOLE_WORD = re.compile(r"\S+(?=\s)")
_WORD_THEN_BREAK = re.compile(r"\s+([A-Za-z']+)(?=\s)")
"""A whole word with more to come after it: "so." ends a sentence, nothing is cut before it."""


def clean_for_speech(text: str) -> str:
    text = _MARKDOWN.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


class SentenceChunker:
    def __init__(
        self,
        first_piece_min_words: int = 2,
        min_chars: int = 2,
        first_phrase_min_words: int = 3,
        max_piece_words: int = 16,
    ) -> None:
        """`first_piece_min_words`: words before a comma may end the first piece; `first_phrase_min_words`:
        words before a phrase boundary may (0: never cut there); `max_piece_words`: longer sentences are cut
        (0: never)."""
        self.first_piece_min_words = first_piece_min_words
        self.first_phrase_min_words = first_phrase_min_words
        self.max_piece_words = max_piece_words
        self.min_chars = min_chars
        self._buffer = ""
        self._emitted = 0

    @classmethod
    def whole_sentences(cls) -> SentenceChunker:
        """No early first piece: for speech nobody is waiting on (a file written by `say`)."""
        return cls(first_piece_min_words=10_000, first_phrase_min_words=0, max_piece_words=0)

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
        while (cut := self._long_piece_cut()) is not None:
            piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
            self._emit(piece, pieces)
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
        if self._emitted == 0 and (cut := self._first_piece_cut()) is not None:
            return cut
        return self._long_piece_cut()

    def _long_piece_cut(self) -> int | None:
        """Where a sentence past `max_piece_words` whole words is cut, among those words and at least four in:
        after its last comma, else before its last clause opener ("until", "because"), else before its last
        "and" or "or", else before its last verb, else after those words."""
        if self.max_piece_words <= 0:
            return None
        words = list(_WHOLE_WORD.finditer(self._buffer))
        if len(words) <= self.max_piece_words:
            return None
        best: dict[int, int] = {}  # rank (lower is better) -> where
        for index in range(4, self.max_piece_words + 1):
            before, word = words[index - 1].group(), words[index].group().lower()
            if before.endswith(","):
                best[0] = words[index].start()
            elif word in _PHRASE_OPENERS and before[-1:].isalnum():
                best[1 if word in _CLAUSE_OPENERS else 2 if word in ("and", "or") else 3] = words[index].start()
        return best[min(best)] if best else words[self.max_piece_words].start()

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
