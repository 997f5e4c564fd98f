"""Whisper decoding over a window sized to the utterance instead of a fixed 30 s.

faster-whisper's `transcribe` always pads the features to 30 s (3000 frames)
before the encoder, so a 2 s question pays for 30 s of encoder work: most of
the cost of every turn. CTranslate2's Whisper encoder accepts fewer frames and
its cost scales with them, so this decoder encodes the clip plus a margin of
padding and decodes greedily over that.

Everything faster-whisper does for quality on a single 30 s segment is kept:
its feature extractor, the suppressed tokens (`-1` = its non-speech set, plus
blank suppression), the prompt layout (previous-text token, prompt, start of
transcript, no timestamps), and the no-speech rule (no_speech_prob above 0.6
and an average log-probability below -1 means silence: an empty transcript).

Whisper was trained on 30 s windows only; a window much shorter than it was
trained on sometimes makes the decoder loop. `decode` therefore returns None
when the output looks degenerate (repeated n-grams, a high gzip compression
ratio, no end of text within a length the clip can hold), and the caller falls
back to the 30 s path for that utterance; so it does when the model thinks there
is no speech yet writes confident text (its "you" on silence).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.providers.base import TimedWord

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

# Whisper's mel frames: 10 ms each (hop 160 at 16 kHz); the encoder halves them.
FRAMES_PER_SECOND = 100
FULL_WINDOW_FRAMES = 3000


@dataclass(frozen=True)
class WindowOptions:
    """How the short window is sized and when its output is trusted.

    margin_s, min_window_s: the window is the clip plus a margin of silence, and
      never shorter than a floor. Over windows of a few seconds tiny.en often
      says the utterance again ("What is 2 plus 2? What is 2 plus"): on the
      bench's 58 clips, clip + 4 s fell back to 30 s 4 times, clip + 2 s with
      a 6 s floor 4 times (and lost words), a 8 s floor once, a 10 s floor
      never, at a third of the 30 s encoder's cost (`appliance bench --stt`).
    max_clip_s: longer utterances go through the 30 s path (which also splits
      audio over 30 s); the window must stay within the 30 s the model knows.
    """

    margin_s: float = 3.0
    min_window_s: float = 10.0
    max_clip_s: float = 25.0
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    # Fast speech is about 3-4 words (4-6 tokens) a second; a decoder that has
    # not reached end-of-text after this many tokens per second is looping.
    max_tokens_per_second: float = 8.0
    # The short window's failure is the utterance said again ("What is 2 plus
    # 2? What is 2 plus"): one 3-word run seen twice. In a long utterance that
    # may be genuine; then the guard only costs a 30 s pass, never a word.
    repeated_ngram: int = 3
    repeated_ngram_times: int = 2


@dataclass(frozen=True)
class WindowResult:
    text: str
    no_speech_prob: float
    avg_logprob: float
    window_frames: int


@dataclass(frozen=True)
class _Decoded:
    result: WindowResult | None
    tokenizer: Tokenizer
    tokens: list[int]
    encoded: Any
    """The encoder's output (a CTranslate2 StorageView), for aligning words; None for silence."""


def window_frames(clip_samples: int, sample_rate: int, margin_s: float, min_window_s: float = 0.0) -> int:
    """Frames to encode: clip + margin, at least min_window_s, even (the encoder strides by 2), at most 30 s."""
    seconds = max(clip_samples / sample_rate + margin_s, min_window_s)
    frames = int(np.ceil(seconds * FRAMES_PER_SECOND))
    frames += frames % 2
    return min(frames, FULL_WINDOW_FRAMES)


def compression_ratio(text: str) -> float:
    """How well gzip compresses the text: high for text that repeats itself."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeats_ngram(text: str, n: int, times: int) -> bool:
    """True when some run of n words occurs at least `times` times: the decoder's loop."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    counts: dict[tuple[str, ...], int] = {}
    for start in range(len(words) - n + 1):
        gram = tuple(words[start : start + n])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= times:
            return True
    return False


class ShortWindowDecoder:
    """Greedy decoding of one utterance over a window of clip + margin."""

    def __init__(self, model: WhisperModel, options: WindowOptions | None = None) -> None:
        from faster_whisper.transcribe import get_suppressed_tokens

        self._model = model
        self.options = options or WindowOptions()
        self._get_suppressed_tokens = get_suppressed_tokens
        self._tokenizers: dict[str, tuple[Tokenizer, list[int]]] = {}

    def fits(self, audio: np.ndarray, sample_rate: int) -> bool:
        return len(audio) <= self.options.max_clip_s * sample_rate

    def decode(self, audio: np.ndarray, language: str, prompt: str | None = None) -> WindowResult | None:
        """The transcript of `audio` (float32, 16 kHz), or None if the short window's output is untrustworthy."""
        return self._decode(audio, language, prompt).result

    def timed_words(self, audio: np.ndarray, language: str, prompt: str | None = None) -> list[TimedWord] | None:
        """The words of `audio` with their times, aligned over the same short window (Whisper's cross-attention,
        as faster-whisper's `word_timestamps` does over 30 s); None if the window's output is untrustworthy."""
        decoded = self._decode(audio, language, prompt)
        if decoded.result is None or decoded.encoded is None:
            return None
        content_frames = min(decoded.result.window_frames, len(audio) // self._model.feature_extractor.hop_length)
        (aligned,) = self._model.find_alignment(decoded.tokenizer, [decoded.tokens], decoded.encoded, content_frames)
        words = [w for w in aligned if any(c.isalnum() for c in w["word"])]  # punctuation is a "word" here
        return [TimedWord(w["word"].strip(), float(w["start"]), float(w["end"])) for w in words]

    def _decode(self, audio: np.ndarray, language: str, prompt: str | None) -> _Decoded:
        import ctranslate2

        extractor = self._model.feature_extractor
        sample_rate = int(extractor.sampling_rate)
        frames = window_frames(len(audio), sample_rate, self.options.margin_s, self.options.min_window_s)
        # The 30 s path pads the features with zeros; here the audio is padded
        # with digital silence instead, which made tiny.en repeat itself a
        # little less often over short windows (4 against 5 of the 10 bench
        # questions at clip + 4 s, no floor).
        padded = np.zeros(frames * extractor.hop_length, dtype=np.float32)
        padded[: len(audio)] = audio[: len(padded)]
        window = extractor(padded)[:, :frames]
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(window[np.newaxis])), to_cpu=False
        )
        tokenizer, suppressed = self._tokenizer(language)
        prompt_ids = self._prompt(tokenizer, prompt)
        clip_s = len(audio) / sample_rate
        max_new = int(8 + self.options.max_tokens_per_second * clip_s)
        result = self._model.model.generate(
            encoded,
            [prompt_ids],
            beam_size=1,
            # Room past the budget, so a loop shows as too many tokens: here
            # CTranslate2 generated only about half of max_length new tokens.
            max_length=len(prompt_ids) + 2 * max_new,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppressed,
        )[0]
        tokens = result.sequences_ids[0]
        # CTranslate2 returns the log-probability divided by the length;
        # faster-whisper's threshold is on the sum over length + 1.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = tokenizer.decode(tokens).strip()
        silent = (
            result.no_speech_prob > self.options.no_speech_threshold and avg_logprob < self.options.log_prob_threshold
        )
        if silent:
            return _Decoded(WindowResult("", result.no_speech_prob, avg_logprob, frames), tokenizer, [], None)
        # Likely no speech, but the text is confident: over a short window
        # that is Whisper's "you" on silence; the 30 s path decides instead.
        doubtful = result.no_speech_prob > self.options.no_speech_threshold
        if doubtful or len(tokens) > max_new or self._degenerate(text):
            return _Decoded(None, tokenizer, tokens, encoded)
        return _Decoded(WindowResult(text, result.no_speech_prob, avg_logprob, frames), tokenizer, tokens, encoded)

    def _degenerate(self, text: str) -> bool:
        opts = self.options
        return compression_ratio(text) > opts.compression_ratio_threshold or repeats_ngram(
            text, opts.repeated_ngram, opts.repeated_ngram_times
        )

    def _tokenizer(self, language: str) -> tuple[Tokenizer, list[int]]:
        """The tokenizer for `language` and the tokens never to emit: `-1` is faster-whisper's
        default set (non-speech symbols), to which it adds the task and start tokens."""
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            model = self._model
            tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
            self._tokenizers[language] = (tokenizer, list(self._get_suppressed_tokens(tokenizer, [-1])))
        return self._tokenizers[language]

    def _prompt(self, tokenizer: Tokenizer, prompt: str | None) -> list[int]:
        """The layout faster-whisper gives a first segment with an initial prompt and no timestamps."""
        ids: list[int] = []
        if prompt and prompt.strip():
            words = tokenizer.encode(" " + prompt.strip())
            ids = [tokenizer.sot_prev, *words[-(self._model.max_length // 2 - 1) :]]
        return [*ids, *tokenizer.sot_sequence, tokenizer.no_timestamps]
