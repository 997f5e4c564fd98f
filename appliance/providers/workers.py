"""Run engine calls in a worker thread, one thread per engine.

Each engine gets its own single-thread executor: engines are not thread-safe,
calls to one engine are naturally serialized, and a slow engine never starves
another. Streams cross from the thread to the loop with call_soon_threadsafe;
a cancel flag stops the producer between items.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_DONE = object()


class EngineWorker:
    """A named single thread that runs one engine's blocking calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{name}")

    async def run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    def submit(self, fn: Callable[[], object]) -> None:
        """Queue work nobody waits for (a prefill); it runs before anything asked for after it. Its failure
        is only logged, and work submitted after `aclose` is dropped."""

        def run() -> None:
            try:
                fn()
            except Exception as exc:
                log.debug("engine %s: background work failed: %s", self.name, exc)

        with contextlib.suppress(RuntimeError):  # shut down: nothing left to prepare for
            self._executor.submit(run)

    async def stream(self, make_iter: Callable[[threading.Event], Iterator[T]]) -> AsyncIterator[T]:
        """Iterate a blocking generator in the worker, yielding its items on the loop.

        `make_iter` receives a cancel event; it should stop producing soon after
        the event is set. The event is set when the consumer stops early for any
        reason (cancellation, break, error).
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def produce() -> None:
            try:
                for item in make_iter(cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                    if cancel.is_set():
                        break
            except BaseException as exc:  # handed to the consumer, which re-raises it
                loop.call_soon_threadsafe(queue.put_nowait, _Failure(exc))
            finally:
                with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                    loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._executor, produce)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.exc
                yield item  # type: ignore[misc]
        finally:
            cancel.set()
            if not future.done():
                # Wait for the engine to notice, so the next call does not queue behind a
                # generation nobody wants; shielded so a second cancel cannot skip it.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(future)

    async def aclose(self) -> None:
        """Stop accepting work and wait for a running call, so the engine can be freed safely."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._executor.shutdown, wait=True)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
