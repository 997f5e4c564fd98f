"""Logging that suits where stderr goes: the journal under systemd, a terminal or a file otherwise.

journald stamps each line with its own time and reads a leading `<N>` as the syslog priority, so under
systemd a line is `<4>appliance.fleet.link: broker gone` (level as priority, no second timestamp);
everywhere else it keeps the usual `time LEVEL name: message`. Whether stderr is the journal is decided
the way systemd documents it: JOURNAL_STREAM holds the device and inode of the stream it connected, and
stderr must be that very stream (a service that redirects stderr elsewhere still gets timestamps).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# syslog priorities (RFC 5424): 2 critical, 3 error, 4 warning, 5 notice, 6 info, 7 debug
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return 7


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the very stream systemd connected to the journal (JOURNAL_STREAM=dev:inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False  # no file descriptor (a test's StringIO, a closed stream)
    return status.st_dev == int(device) and status.st_ino == int(inode)


class JournalFormatter(logging.Formatter):
    """`<priority>name: message`, with the prefix on every line so a traceback keeps its priority."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def configure_logging(level: int, stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Set up the root logger at `level` on `stream` (stderr), in the journal's format when it is the journal."""
    target = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(target)
    journal = stream_is_journal(target, environ)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter(CONSOLE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
