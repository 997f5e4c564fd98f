"""Audio transcriptions from an OpenAI-compatible endpoint (whisper-1 and the like)."""

from __future__ import annotations

from typing import Any

from appliance.audio.frames import ENGINE_RATE, AudioChunk, Int16Array
from appliance.audio.wav import encode_wav
from appliance.providers.base import STT, Transcript
from appliance.providers.cloud.openai_client import Endpoint, call, make_client, malformed


class OpenAISTT(STT):
    is_cloud = True

    def __init__(
        self, endpoint: Endpoint, model: str, descriptor: str, language: str | None = None, timeout_s: float = 15.0
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.language = language
        self.descriptor = descriptor
        self._client = make_client(endpoint, timeout_s)

    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        wav = encode_wav(AudioChunk(audio, ENGINE_RATE))
        extra: dict[str, Any] = {}
        if language or self.language:
            extra["language"] = language or self.language
        if prompt:
            extra["prompt"] = prompt
        result: Any = await call(
            self.descriptor,
            lambda: self._client.audio.transcriptions.create(
                model=self.model, file=("speech.wav", wav, "audio/wav"), **extra
            ),
        )
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise malformed(self.descriptor, "no text in the transcription")
        return Transcript(text.strip(), language or self.language, len(audio) / ENGINE_RATE)

    async def aclose(self) -> None:
        await self._client.close()
