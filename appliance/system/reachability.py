"""Can this box reach a server? A TCP connect or one HTTP GET, with a short deadline, for `doctor`.

Any HTTP answer counts as reachable, even 404 or 401: the question is whether the network path and the
server are there, not whether the request was meaningful.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str


async def probe_tcp(host: str, port: int, timeout_s: float) -> Probe:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return Probe(False, f"{host}:{port}: no answer within {timeout_s:g} s")
    except OSError as exc:
        return Probe(False, f"{host}:{port}: {exc.strerror or exc}")
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):  # it answered; how the goodbye went does not matter
        await asyncio.wait_for(writer.wait_closed(), timeout_s)
    return Probe(True, f"{host}:{port} reachable")


def http_url(url: str) -> str:
    """The HTTP form of a WebSocket URL (LiveKit's signalling URL is ws:// or wss://)."""
    for scheme, replacement in (("wss://", "https://"), ("ws://", "http://")):
        if url.startswith(scheme):
            return replacement + url[len(scheme) :]
    return url


async def probe_http(url: str, timeout_s: float) -> Probe:
    target = http_url(url)
    if not target.startswith(("http://", "https://")):
        return Probe(False, f"{url}: not an http(s) or ws(s) URL")
    return await asyncio.to_thread(_get, target, timeout_s)


def _get(url: str, timeout_s: float) -> Probe:
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "appliance-doctor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Probe(True, f"{url} answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        return Probe(True, f"{url} answered HTTP {exc.code}")
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "strerror", None) or str(reason)
        return Probe(False, f"{url}: {text}")
    except TimeoutError:
        return Probe(False, f"{url}: no answer within {timeout_s:g} s")
    except OSError as exc:
        return Probe(False, f"{url}: {exc.strerror or exc}")
