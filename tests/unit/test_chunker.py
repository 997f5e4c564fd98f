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


def test_first_piece_ends_before_the_verb_of_a_long_subject() -> None:
    text = "The boiling point of water is 100 degrees. It is a constant. "
    pieces = _stream(SentenceChunker(), text)
    # Cut once the word after the boundary is whole (" is " may have been " island").
    assert pieces[0] == (text.index(" is ") + len(" is"), "The boiling point of water")
    assert [p for _, p in pieces[1:]] == ["is 100 degrees.", "It is a constant."]  # later pieces: sentences


def test_first_piece_is_not_cut_inside_a_noun_phrase_or_before_a_whole_word_is_known() -> None:
    chunker = SentenceChunker()
    assert chunker.push("The fun fact about cats is") == []  # "about" is no boundary; "is" may go on
    assert chunker.push("land") == []
    assert chunker.push(" magic. ") == ["The fun fact about cats island magic."]


def test_short_subjects_and_sentence_final_words_are_not_cut() -> None:
    for text in ["Your taxi is here. ", "Dr. Smith will see you now. ", "I do not think so. "]:
        assert [p for _, p in _stream(SentenceChunker(), text)] == [text.strip()]


def test_the_comma_or_the_phrase_boundary_whichever_comes_first() -> None:
    text = "The first thing to know, of course, is this. "
    assert next(p for _, p in _stream(SentenceChunker(), text)) == "The first thing to know,"
    text = "The fun fact about cats is that, at night, they hunt. "
    assert next(p for _, p in _stream(SentenceChunker(), text)) == "The fun fact about cats"


def test_phrase_cuts_can_be_turned_off() -> None:
    text = "The capital of France is Paris. "
    assert [p for _, p in _stream(SentenceChunker(first_phrase_min_words=0), text)] == [text.strip()]


def test_a_long_sentence_is_spoken_in_parts_cut_where_a_speaker_would_pause() -> None:
    text = (
        "To make tea, you will need to brew the tea by steeping it in hot water until it is smooth and "
        "fragrant and then you can pour it into a big mug. "
    )
    pieces = [p for _, p in _stream(SentenceChunker(max_piece_words=14), text)]
    assert pieces == [
        "To make tea,",
        "you will need to brew the tea by steeping it in hot water",  # before the clause opener "until"
        "until it is smooth and fragrant",  # no comma, no clause opener: before the last "and", not "can"
        "and then you can pour it into a big mug.",
    ]
    assert " ".join(pieces) == text.strip()


def test_a_long_run_without_any_boundary_is_cut_after_the_most_words() -> None:
    chunker = SentenceChunker(max_piece_words=5)
    pieces = [p for _, p in _stream(chunker, "one two three four five six seven eight")] + chunker.flush()
    assert pieces == ["one two three four five", "six seven eight"]
    assert SentenceChunker.whole_sentences().push("one two three four five six seven eight nine ten. ") == [
        "one two three four five six seven eight nine ten."
    ]


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
