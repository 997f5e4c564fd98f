"""`appliance say TEXT`: speak text with the configured voice, to a wav or the speaker."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from appliance.audio.frames import AudioChunk
from appliance.audio.wav import write_wav
from appliance.cli.errors import EXIT_OK, OperationalError, UsageError
from appliance.config import AppConfig
from appliance.engines import Engines
from appliance.voice.chunker import SentenceChunker


async def say_command(args: argparse.Namespace, config: AppConfig) -> int:
    text = args.text.strip()
    if not text:
        raise UsageError("nothing to say (empty text)")
    if args.output is None:
        from appliance.cli.devices import default_devices

        devices = default_devices()
        if devices.output is None:
            raise OperationalError(f"no sound output device ({devices.reason}); use --output FILE.wav")
    engines = Engines(config)
    engines.check()
    tts = engines.tts()  # the whole chain, fallback and cloud included
    try:
        chunker = SentenceChunker(
            first_piece_min_words=10_000, first_phrase_min_words=0
        )  # whole sentences: nothing waits
        pieces = [*chunker.push(text), *chunker.flush()]
        chunks = [chunk for piece in pieces async for chunk in tts.synthesize(piece)]
    finally:
        await tts.aclose()
    audio = AudioChunk(np.concatenate([c.samples for c in chunks]), tts.sample_rate)
    if args.output is not None:
        write_wav(args.output, audio)
        print(f"wrote {args.output} ({audio.duration:.1f} s)", file=sys.stderr)
        return EXIT_OK
    import sounddevice as sd

    sd.play(audio.samples, audio.sample_rate, blocking=True)
    return EXIT_OK
