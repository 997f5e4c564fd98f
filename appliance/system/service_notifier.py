"""What the appliance tells systemd: ready, what it is doing, still alive, stopping.

The watchdog is fed from a task on the event loop, not from a thread: if the loop blocks (a stuck
inference call awaited on the loop, a deadlock), the pings stop and systemd restarts the service,
which is the whole point. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping

from appliance.system.notify import NotifySocket

log = logging.getLogger(__name__)


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds systemd allows between pings (WATCHDOG_USEC), or None when there is no watchdog for `pid`.

    WATCHDOG_PID, when set, names the process the watchdog is meant for: a child that inherited the
    environment must not ping on its parent's behalf.
    """
    owner = environ.get("WATCHDOG_PID")
    if owner and owner.strip() != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class ServiceNotifier:
    """sd_notify for the appliance's lifecycle: `ready()`, `status(text)`, `stopping()`, and the watchdog."""

    def __init__(self, socket: NotifySocket, interval_s: float | None) -> None:
        self.socket = socket
        self.interval_s = interval_s
        self._last_status: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceNotifier:
        env = os.environ if environ is None else environ
        socket = NotifySocket.from_environment(env)
        return cls(socket, watchdog_interval(env, os.getpid()) if socket.enabled else None)

    @property
    def enabled(self) -> bool:
        return self.socket.enabled

    def ready(self, status: str | None = None) -> None:
        """Start-up is complete (models loaded, transports started): systemd marks the unit active."""
        fields = ["READY=1"]
        if status is not None:
            fields.append(self._status_field(status))
        self.socket.send(*fields)

    def status(self, text: str) -> None:
        """One line for `systemctl status` (the session state); repeats of the same line are not sent."""
        if text != self._last_status:
            self.socket.send(self._status_field(text))

    def stopping(self, status: str = "stopping") -> None:
        """Shutdown has begun: systemd waits for the exit instead of treating the silence as a hang."""
        self.socket.send("STOPPING=1", self._status_field(status))

    def watchdog_interval(self) -> float | None:
        return self.interval_s

    def ping_watchdog(self) -> None:
        self.socket.send("WATCHDOG=1")

    async def run_watchdog(self, stop: asyncio.Event) -> None:
        """Ping at half the interval until `stop` is set; returns at once when there is no watchdog."""
        if self.interval_s is None:
            return
        period = self.interval_s / 2
        log.debug("watchdog: pinging every %.1f s", period)
        while not stop.is_set():
            self.ping_watchdog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)

    def close(self) -> None:
        self.socket.close()

    def _status_field(self, text: str) -> str:
        line = " ".join(text.split())  # one line: a newline would start a new field
        self._last_status = text
        return f"STATUS={line}"
