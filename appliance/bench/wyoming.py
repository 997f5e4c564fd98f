"""`appliance bench --wyoming`: the Wyoming services' latency, as Home Assistant would see it.

The engines already loaded for the bench serve Wyoming on a loopback port; a client in this process (the
`wyoming` library's own) asks as Home Assistant's pipeline does:

- speech-to-text: each question streamed at real-time pace with the trailing silence Home Assistant's
  voice detector waits for before it ends the command (`END_SILENCE_S`), then audio-stop; measured from
  audio-stop to the transcript. Twice: with the transcript started in that silence (as served), and
  started only at audio-stop (what a plain Wyoming ASR server does).
- text-to-speech: each reply the device spoke in the bench, from the synthesize request to the first
  audio chunk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from appliance.app import Appliance
from appliance.audio.frames import ENGINE_RATE
from appliance.audio.wav import read_wav
from appliance.bench.wer import word_error_rate
from appliance.wyoming.asr import Transcription
from appliance.wyoming.connection import Connection
from appliance.wyoming.server import WyomingServer

END_SILENCE_S = 0.7
"""Silence after a command before Home Assistant's pipeline ends it (its voice command segmenter's default)."""
CHUNK_S = 0.02
READ_S = 60.0


def _p50(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 50)), 1) if values else None


async def wyoming_latency_ms(appliance: Appliance, questions: list[Path], replies: list[str]) -> dict[str, Any]:
    services = appliance.wyoming_services()
    early_used: list[bool] = []

    def watch(connection: Connection) -> None:
        connection.on_transcribed = lambda t: early_used.append(isinstance(t, Transcription) and t.used_early)

    server = WyomingServer(services, "127.0.0.1", 0)
    server.on_connection = watch
    await server.start()
    try:
        early = [await _asr(server.port, path) for path in questions]
        used = sum(early_used)
        services.asr = dataclasses.replace(services.asr, speculate_after_s=float("inf"))
        at_stop = [await _asr(server.port, path) for path in questions]
        tts = [await _tts_first_chunk(server.port, text) for text in replies if text.strip()]
    finally:
        await server.aclose()
    return {
        "asr_end_of_audio_to_transcript_ms": {
            "p50": _p50([ms for ms, _ in early]),
            "max": max((ms for ms, _ in early), default=None),
            "early_transcripts_used": used,
            "requests": len(early),
        },
        "asr_transcribed_at_audio_stop_ms": {"p50": _p50([ms for ms, _ in at_stop])},
        "asr_word_error_rate": _wer(questions, [text for _, text in early]),
        "end_silence_s": END_SILENCE_S,
        "tts_request_to_first_chunk_ms": {"p50": _p50(tts), "max": max(tts, default=None), "requests": len(tts)},
    }


def _wer(questions: list[Path], heard: list[str]) -> float | None:
    """Against the questions' own text (tests/data/questions.toml, q01 is its first line)."""
    listing = questions[0].parent.parent / "questions.toml" if questions else None
    if listing is None or not listing.exists():
        return None
    texts: list[str] = tomllib.loads(listing.read_text())["questions"]
    pairs = [(texts[int(q.stem[1:]) - 1], h) for q, h in zip(questions, heard, strict=True) if q.stem[1:].isdigit()]
    return round(word_error_rate(pairs), 3) if pairs else None


async def _asr(port: int, path: Path) -> tuple[float, str]:
    """Stream one question as Home Assistant would; (ms from audio-stop to the transcript, the transcript)."""
    audio = read_wav(path)
    samples = np.concatenate([audio.samples, np.zeros(int(END_SILENCE_S * ENGINE_RATE), dtype=np.int16)])
    step = int(CHUNK_S * ENGINE_RATE)
    loop = asyncio.get_running_loop()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=ENGINE_RATE, width=2, channels=1).event())
        started = loop.time()
        for i, at in enumerate(range(0, len(samples), step)):
            block = samples[at : at + step].astype("<i2").tobytes()
            await client.write_event(AudioChunk(rate=ENGINE_RATE, width=2, channels=1, audio=block).event())
            await asyncio.sleep(max(0.0, started + (i + 1) * CHUNK_S - loop.time()))  # real time, as a mic
        await client.write_event(AudioStop().event())
        stopped = loop.time()
        while True:
            event = await asyncio.wait_for(client.read_event(), READ_S)
            if event is None or event.type == "error":
                raise RuntimeError(f"wyoming asr: {event.data if event else 'connection closed'}")
            if event.type == "transcript":
                return 1000 * (loop.time() - stopped), str(event.data.get("text", ""))


async def _tts_first_chunk(port: int, text: str) -> float:
    loop = asyncio.get_running_loop()
    first: float | None = None
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text).event())
        asked = loop.time()
        while True:
            event = await asyncio.wait_for(client.read_event(), READ_S)
            if event is None or event.type == "error":
                raise RuntimeError(f"wyoming tts: {event.data if event else 'connection closed'}")
            if event.type == "audio-chunk" and first is None:
                first = loop.time()
            if event.type == "audio-stop":
                return 1000 * ((first or loop.time()) - asked)
