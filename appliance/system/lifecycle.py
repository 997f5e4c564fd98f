"""The process's life as systemd sees it: ready once it can serve, a status line, a watchdog, a clean stop.

SIGTERM (or SIGINT, or a `restart` command) does not stop things at once: it says STOPPING, lets the
sentence being spoken end and the rooms be left while the transports still run, and only then ends
them (the MQTT link publishes `offline` as it closes). The process then exits 0 after a stop, and
`EXIT_RESTART` after a requested restart: the unit restarts on that status (`RestartForceExitStatus=`),
while `Restart=on-failure` alone would take a clean exit as the end. A stop that hangs past the last-resort
deadline exits `EXIT_HUNG` (a failure: systemd restarts the box unless it was asked to stop it).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable

from appliance.system.service_notifier import ServiceNotifier

log = logging.getLogger(__name__)

WIND_DOWN_LIMIT_S = 15.0
"""Time allowed for the clean part of a stop (systemd's TimeoutStopSec is 30 s)."""
EXIT_DEADLINE_S = 25.0
"""From the stop request to the process being gone, whatever happens."""
EXIT_RESTART = 75
"""A requested restart (EX_TEMPFAIL): systemd/appliance.service restarts the service on it."""
EXIT_HUNG = 70
"""The clean stop hung and the deadline ended the process (EX_SOFTWARE): a failure, never a success."""


class Lifecycle:
    def __init__(self, notifier: ServiceNotifier | None = None, exit_deadline_s: float = EXIT_DEADLINE_S) -> None:
        self.notifier = notifier or ServiceNotifier.from_environment()
        self.exit_deadline_s = exit_deadline_s
        self.stop_requested = asyncio.Event()
        """SIGTERM, SIGINT or a restart command: begin the clean stop."""
        self.restart_requested = False
        """The stop is a restart (the `restart` command, Home Assistant's button)."""
        self.stop = asyncio.Event()
        """Set once winding down is over: transports and links end when it is."""
        self._parts: dict[str, str] = {}
        self._ready = False

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)

    def request_restart(self) -> None:
        """Stop cleanly, then exit with `EXIT_RESTART` so the service comes back."""
        self.restart_requested = True
        self.stop_requested.set()

    @property
    def exit_code(self) -> int:
        """What the process should exit with once it has stopped cleanly."""
        return EXIT_RESTART if self.restart_requested else 0

    def _arm_exit_deadline(self) -> None:
        """Whatever hangs while stopping (a library's close, a thread the interpreter waits for), the
        process is gone before systemd's TimeoutStopSec would kill it: say where it hung, exit non-zero
        (`EXIT_RESTART` if a restart was asked for, else `EXIT_HUNG`)."""

        loop = asyncio.get_running_loop()

        def expire() -> None:
            sys.stderr.write(f"stopping took over {self.exit_deadline_s:g} s; exiting now. Where it hung:\n")
            faulthandler.dump_traceback(sys.stderr, all_threads=True)
            with contextlib.suppress(Exception):  # read from another thread: good enough for a post-mortem
                for task in list(asyncio.all_tasks(loop)):
                    task.print_stack(file=sys.stderr)
            sys.stderr.flush()
            os._exit(EXIT_RESTART if self.restart_requested else EXIT_HUNG)

        timer = threading.Timer(self.exit_deadline_s, expire)
        timer.daemon = True
        timer.start()

    def ready(self) -> None:
        """Models loaded and transports started: systemd may consider the service up."""
        if not self._ready:
            self._ready = True
            self.notifier.ready(self.status_line())
            log.info("ready: %s", self.status_line())

    def report(self, part: str, status: str) -> None:
        """Update one part of the status line (`state`, `sound`, `mqtt`, `rooms`)."""
        self._parts[part] = status
        if self._ready:
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        return " ".join(f"{part}={status}" for part, status in self._parts.items()) or "starting"

    async def supervise(self, wind_down: Callable[[], Awaitable[None]]) -> None:
        """Feed the watchdog; on a stop request say STOPPING, wind down (bounded), then set `stop`."""
        watchdog = asyncio.get_running_loop().create_task(self.notifier.run_watchdog(self.stop), name="watchdog")
        try:
            await self.stop_requested.wait()
            self._arm_exit_deadline()
            self.notifier.stopping()
            log.info("stopping: finishing the sentence, leaving rooms")
            try:
                async with asyncio.timeout(WIND_DOWN_LIMIT_S):
                    await wind_down()
            except TimeoutError:
                log.warning("winding down took over %g s; stopping anyway", WIND_DOWN_LIMIT_S)
            except Exception:
                log.exception("winding down failed; stopping anyway")
        finally:
            self.stop.set()
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            self.notifier.close()
