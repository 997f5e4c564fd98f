"""Reading Wyoming events off a socket without trusting the peer.

The library's own reader drops the connection, silently, on the first line that is not JSON. A client that
sends garbage here gets an `error` event naming what was wrong and, where the framing is still known (a bad
header line, a data block that is not a JSON object), the connection goes on; where it is not (a length
that is not a number, or far too large to read), the error is sent and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

MAX_LINE = 64 * 1024
"""A header line longer than this is not a Wyoming header (the stream reader's limit)."""
MAX_DATA = 256 * 1024
"""Event data (JSON) beyond the header: a synthesize request's text, a transcript's context."""
MAX_PAYLOAD = 4 * 1024 * 1024
"""One audio chunk: 4 MiB is over 20 s of 48 kHz stereo 16-bit; clients send 10-100 ms."""


class BadEvent(ValueError):
    """An event that cannot be used; the stream is still in step (one line, sent back as `error`)."""


class BrokenStream(BadEvent):
    """The stream is out of step (a length that cannot be trusted): the connection must close."""


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None when the peer has closed the connection."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio turns a line over the reader's limit into ValueError
        raise BrokenStream(f"an event header line over {MAX_LINE} bytes") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadEvent("not a Wyoming event: a header must be one line of JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) or not header["type"]:
        raise BadEvent("a Wyoming event header needs a 'type' string")
    data = header.get("data") or {}
    data_length = _length(header, "data_length", MAX_DATA)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD)
    try:
        extra = await reader.readexactly(data_length) if data_length else b""
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    if not isinstance(data, dict):
        raise BadEvent(f"'{header['type']}': 'data' must be a JSON object")
    if extra:
        try:
            more = json.loads(extra)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadEvent(f"'{header['type']}': its data block is not JSON") from None
        if not isinstance(more, dict):
            raise BadEvent(f"'{header['type']}': its data block must be a JSON object")
        data = {**data, **more}
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BrokenStream(f"'{key}' must be a whole number of bytes, not {value!r}")
    if value > limit:
        raise BrokenStream(f"'{key}' of {value} bytes is over the limit of {limit}")
    return value
