"""Why a provider failed, kept apart from what to do about it.

Every provider error is sorted into a category; the fallback adapters and the connectivity
monitor act on the category alone, so they need no knowledge of any provider or SDK.
"""

from __future__ import annotations

import enum
import errno
import socket


class ErrorCategory(enum.Enum):
    TIMEOUT = "timeout"
    """No answer within the deadline (the endpoint may be slow or hung)."""
    OFFLINE = "offline"
    """No route, DNS failure, connection refused or reset: the network (or the host) is not there."""
    RETRYABLE = "retryable"
    """Rate limited (429) or a server error (5xx), a stream cut short, malformed output: try later."""
    PERMANENT = "permanent"
    """Bad key (401/403), unknown model (404), a request the endpoint rejects (400): retrying won't help."""

    @property
    def is_permanent(self) -> bool:
        return self is ErrorCategory.PERMANENT


class ProviderFailure(RuntimeError):
    """A provider call failed; `category` says why, the message is one line naming the provider."""

    def __init__(self, provider: str, category: ErrorCategory, message: str, retry_after: float | None = None):
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.category = category
        self.retry_after = retry_after


def category_of_status(status: int) -> ErrorCategory:
    if status in (408, 504):
        return ErrorCategory.TIMEOUT
    if status == 429 or status >= 500:
        return ErrorCategory.RETRYABLE
    return ErrorCategory.PERMANENT


_OFFLINE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
    errno.ECONNABORTED,
    errno.EPIPE,
}


def category_of_exception(exc: BaseException) -> ErrorCategory:
    """Sort an exception from any HTTP client or socket into a category (walks the cause chain)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ProviderFailure):
            return current.category
        if isinstance(current, TimeoutError | socket.timeout) or "Timeout" in type(current).__name__:
            return ErrorCategory.TIMEOUT
        if isinstance(current, socket.gaierror):
            return ErrorCategory.OFFLINE
        if isinstance(current, OSError) and current.errno in _OFFLINE_ERRNOS:
            return ErrorCategory.OFFLINE
        status = getattr(current, "status_code", None)
        if isinstance(status, int):
            return category_of_status(status)
        name = type(current).__name__
        if name in ("APIConnectionError", "ConnectError", "ConnectionError", "RemoteProtocolError"):
            return ErrorCategory.OFFLINE
        current = current.__cause__ or current.__context__
    return ErrorCategory.RETRYABLE
