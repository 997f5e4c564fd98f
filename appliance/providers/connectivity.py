"""Does the device have a network? Learned from failures, confirmed by cheap probes.

A cloud call that fails as OFFLINE (DNS failure, no route, connection refused) marks the device
offline at once, so every later request skips cloud providers instead of waiting out their
deadlines. While offline a background task tries a TCP connection to the cloud endpoints with
backoff; the first that connects brings the device back online.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from appliance.emitter import Emitter

log = logging.getLogger(__name__)


class Connectivity:
    def __init__(self, hosts: Sequence[tuple[str, int]] = (), probe_initial_s: float = 2.0, probe_max_s: float = 60.0):
        self.hosts = list(hosts)
        self.online = True
        self.probe_initial_s = probe_initial_s
        self.probe_max_s = probe_max_s
        self.on_change: Emitter[[bool]] = Emitter("change")
        self._probe: asyncio.Task[None] | None = None

    def add_host(self, host: str, port: int) -> None:
        if (host, port) not in self.hosts:
            self.hosts.append((host, port))

    def went_offline(self, reason: str) -> None:
        if self.online:
            self.online = False
            log.warning("offline (%s): cloud providers are skipped until the network is back", reason)
            self._notify()
        if self._probe is None or self._probe.done():
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to probe with
                self._probe = asyncio.get_running_loop().create_task(self._probe_until_online())

    def _notify(self) -> None:
        self.on_change.emit(self.online)

    async def _probe_until_online(self) -> None:
        delay = self.probe_initial_s
        while not self.online:
            await asyncio.sleep(delay)
            if await self.reachable():
                self.online = True
                log.warning("online again")
                self._notify()
                return
            delay = min(delay * 2, self.probe_max_s)

    async def reachable(self) -> bool:
        for host, port in self.hosts:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
            except (OSError, TimeoutError):
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
