"""Speech from an OpenAI-compatible endpoint (tts-1 and the like), streamed as raw PCM."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from appliance.audio.frames import AudioChunk
from appliance.providers.base import TTS
from appliance.providers.cloud.openai_client import Endpoint, make_client, stream_guard

PCM_RATE = 24_000
"""OpenAI's `pcm` response format: 24 kHz, 16-bit little-endian, mono."""
CHUNK_BYTES = 9_600  # 200 ms


class OpenAITTS(TTS):
    is_cloud = True
    sample_rate = PCM_RATE

    def __init__(self, endpoint: Endpoint, model: str, voice: str, descriptor: str, timeout_s: float = 15.0) -> None:
        self.endpoint = endpoint
        self.model = model
        self.voice = voice
        self.descriptor = descriptor
        self._client = make_client(endpoint, timeout_s)

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        async for chunk in stream_guard(self.descriptor, self._synthesize(text)):
            yield chunk

    async def _synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        speech = self._client.audio.speech.with_streaming_response.create(
            model=self.model, voice=self.voice, input=text, response_format="pcm"
        )
        carry = b""
        async with speech as response:
            async for data in response.iter_bytes(CHUNK_BYTES):
                data = carry + data
                whole = len(data) - len(data) % 2
                carry = data[whole:]
                if whole:
                    yield AudioChunk(np.frombuffer(data[:whole], dtype="<i2").copy(), PCM_RATE)

    async def aclose(self) -> None:
        await self._client.close()
