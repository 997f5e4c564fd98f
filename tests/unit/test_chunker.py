"""SentenceChunker: the LLM's token stream cut into speakable pieces as soon as each one is complete."""

from __future__ import annotations

from appliance.voice.chunker import SentenceChunker, clean_for_speech


def _stream(chunker: SentenceChunker, text: str, size: int = 1) -> list[tuple[int, str]]:
    """Push `text` `size` characters at a time; (index of the last character pushed, piece) per piece."""
    out: list[tuple[int, str]] = []
    for i in range(0, len(text), size):
        for piece in chunker.push(text[i : i + size]):
            out.append((min(i + size, len(text)) - 1, piece))
    return out


def test_sentence_is_emitted_when_the_space_after_its_end_arrives() -> None:
    text = "The sun is out. It is warm"
    pieces = _stream(SentenceChunker(), text)
    assert pieces == [(text.index(". ") + 1, "The sun is out.")]


def test_sentence_end_without_following_text_is_held_until_more_arrives() -> None:
    chunker = SentenceChunker()
    assert chunker.push("The sun is out.") == []
    assert chunker.push(" It") == ["The sun is out."]


def test_llm_like_tokens_give_each_sentence_once_in_order() -> None:
    chunker = SentenceChunker()
    tokens = ["Sure", "!", " The", " time", " is", " noon", ".", " Anything", " else", "?", " "]
    pieces = [p for t in tokens for p in chunker.push(t)]
    assert pieces + chunker.flush() == ["Sure!", "The time is noon.", "Anything else?"]


def test_question_exclamation_semicolon_and_colon_end_pieces() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Really? Yes! First this; then that: done. ") == [
        "Really?",
        "Yes!",
        "First this;",
        "then that:",
        "done.",
    ]


def test_first_piece_ends_at_a_comma_after_two_words() -> None:
    text = "Of course, the capital of France is Paris."
    pieces = _stream(SentenceChunker(), text)
    assert pieces[0] == (text.index(", ") + 1, "Of course,")


def test_first_piece_does_not_end_at_a_comma_after_one_word() -> None:
    chunker = SentenceChunker()
    assert [p for _, p in _stream(chunker, "Yes, I think so. ")] == ["Yes, I think so."]


def test_later_pieces_do_not_end_at_a_comma() -> None:
    chunker = SentenceChunker()
    pieces = [p for _, p in _stream(chunker, "Well I think that, in the end, it will rain, sadly")]
    assert pieces + chunker.flush() == ["Well I think that,", "in the end, it will rain, sadly"]


def test_decimal_number_does_not_end_a_sentence() -> None:
    chunker = SentenceChunker()
    pieces = [p for _, p in _stream(chunker, "It is 3.5 degrees outside. ")]
    assert pieces == ["It is 3.5 degrees outside."]


def test_abbreviation_does_not_end_a_sentence() -> None:
    chunker = SentenceChunker()
    pieces = [p for _, p in _stream(chunker, "Dr. Smith will see you now. ")]
    assert pieces == ["Dr. Smith will see you now."]


def test_bold_and_italic_markers_are_removed() -> None:
    chunker = SentenceChunker()
    assert chunker.push("This is **very** *important* news. ") == ["This is very important news."]


def test_heading_marker_is_removed() -> None:
    chunker = SentenceChunker()
    assert chunker.push("# Weather today\n") == ["Weather today"]


def test_inline_code_backticks_are_removed() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Run `ls` now. ") == ["Run ls now."]


def test_reply_without_sentence_end_is_returned_by_flush() -> None:
    chunker = SentenceChunker()
    assert [p for _, p in _stream(chunker, "no sentence end here")] == []
    assert chunker.flush() == ["no sentence end here"]


def test_flush_empties_the_buffer() -> None:
    chunker = SentenceChunker()
    chunker.push("something left")
    chunker.flush()
    assert chunker.flush() == []


def test_newline_ends_a_piece() -> None:
    text = "First line\nSecond line"
    chunker = SentenceChunker()
    assert _stream(chunker, text) == [(text.index("\n"), "First line")]
    assert chunker.flush() == ["Second line"]


def test_empty_input_yields_nothing() -> None:
    chunker = SentenceChunker()
    assert chunker.push("") == []
    assert chunker.flush() == []


def test_whitespace_only_input_yields_nothing() -> None:
    chunker = SentenceChunker()
    assert chunker.push("   \n\n\t  ") == []
    assert chunker.flush() == []


def test_punctuation_only_piece_is_not_emitted() -> None:
    chunker = SentenceChunker()
    assert chunker.push("... ") == []
    assert chunker.flush() == []


def test_clean_for_speech_collapses_white_space() -> None:
    assert clean_for_speech("  a \n\t b  ") == "a b"
