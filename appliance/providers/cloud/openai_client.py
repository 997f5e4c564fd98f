"""One OpenAI-compatible endpoint (OpenAI, Groq, Together, Ollama, vLLM, llama.cpp's server).

The official `openai` SDK does the HTTP and SSE; we set no retries (the fallback adapter
decides what to do after a failure) and translate its errors into our categories.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from appliance.providers.errors import ErrorCategory, ProviderFailure, category_of_exception

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    api_key: str | None

    @property
    def host_port(self) -> tuple[str, int]:
        url = urlparse(self.base_url)
        return url.hostname or "localhost", url.port or (443 if url.scheme == "https" else 80)


def make_client(endpoint: Endpoint, timeout_s: float) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or "not-needed",
        max_retries=0,
        timeout=timeout_s,
    )


def failure(descriptor: str, exc: BaseException) -> ProviderFailure:
    if isinstance(exc, ProviderFailure):
        return exc
    category = category_of_exception(exc)
    retry_after = None
    response = getattr(exc, "response", None)
    if response is not None:
        with contextlib.suppress(TypeError, ValueError):
            retry_after = float(response.headers.get("retry-after"))
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ProviderFailure(descriptor, category, f"{category.value}: {message[:200]}", retry_after)


async def call(descriptor: str, fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except ProviderFailure:
        raise
    except Exception as exc:
        raise failure(descriptor, exc) from exc


async def stream_guard(descriptor: str, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Re-raise anything a stream throws half-way as a categorized failure."""
    try:
        async for item in items:
            yield item
    except ProviderFailure:
        raise
    except Exception as exc:
        raise failure(descriptor, exc) from exc


def malformed(descriptor: str, what: str) -> ProviderFailure:
    return ProviderFailure(descriptor, ErrorCategory.RETRYABLE, f"retryable: malformed response ({what})")
