"""This process's memory, as the bench and telemetry report it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource

MALLOC_ARENAS = 2
"""glibc gives each thread that allocates its own malloc arena (up to 8 per core); with an engine thread per
stage, their half-empty arenas cost tens of MB of RSS. Two are enough for one loop and a few workers."""
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas; call before the engine threads start. False where it does not apply (not
    glibc) or `MALLOC_ARENA_MAX` in the environment already decided."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)
    except (OSError, AttributeError):
        return False


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
