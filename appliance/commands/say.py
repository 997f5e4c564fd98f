"""`appliance say TEXT`: speak text with the configured voice, to a wav or the speaker."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from appliance.audio.frames import AudioChunk
from appliance.audio.wav import write_wav
from appliance.cli import EXIT_OK, EXIT_USAGE, CliError
from appliance.config import AppConfig
from appliance.ops.manifest import load_manifest
from appliance.ops.model_store import ModelStore, ModelStoreError
from appliance.providers.compute import ComputeBudget
from appliance.providers.registry import ProviderConfigError, build_tts
from appliance.voice.chunker import SentenceChunker


async def say_command(args: argparse.Namespace, config: AppConfig) -> int:
    text = args.text.strip()
    if not text:
        raise CliError("nothing to say (empty text)", EXIT_USAGE)
    if args.output is None:
        from appliance.commands.devices import default_devices

        devices = default_devices()
        if devices.output is None:
            raise CliError(f"no sound output device ({devices.reason}); use --output FILE.wav")
    store = ModelStore(config.models.dir, load_manifest())
    try:
        tts = build_tts(
            config.tts.provider[0], store, ComputeBudget.for_cores(config.compute.threads), config.tts.speed
        )
    except ProviderConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ModelStoreError as exc:
        raise CliError(str(exc)) from None
    try:
        chunker = SentenceChunker(first_piece_min_words=10_000)
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
