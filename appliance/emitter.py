"""One small typed event emitter: listeners are called in order, and one that raises cannot break the rest.

A session, a transport or a link announces what happened (a turn ended, the state changed, a device
was lost) to whoever listens: the console, the fleet, a room, the journal. Those listeners are other
people's code; a broken stdout pipe in one of them must not leave the conversation stuck. So a listener
that raises is logged with its own name and the emitter goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")

log = logging.getLogger(__name__)


class Emitter(Generic[P]):
    def __init__(self, name: str) -> None:
        self.name = name
        """What is announced (`turn`, `state`, ...), for the log line of a listener that fails."""
        self._listeners: list[Callable[P, None]] = []

    def connect(self, listener: Callable[P, None]) -> Callable[P, None]:
        """Call `listener` on every event from now on; returns it (so this works as a decorator)."""
        self._listeners.append(listener)
        return listener

    def disconnect(self, listener: Callable[P, None]) -> None:
        """Stop calling `listener`; nothing happens if it was not connected."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in list(self._listeners):
            try:
                listener(*args, **kwargs)
            except Exception:
                log.exception("a %s listener (%s) failed; the others still ran", self.name, _describe(listener))

    def __len__(self) -> int:
        return len(self._listeners)

    def __bool__(self) -> bool:
        return True


def _describe(listener: Callable[..., object]) -> str:
    name = getattr(listener, "__qualname__", None) or type(listener).__qualname__
    module = getattr(listener, "__module__", None)
    return f"{module}.{name}" if module else name
