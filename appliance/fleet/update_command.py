"""The `update` command: install a release over MQTT the way an operator would, and answer with the outcome.

It runs the same install path as a person at the box (firmware_scripts/install-release.sh: a new release
beside the running one, doctor, atomic switch, restart, health check, rollback on failure). On a device
the appliance is an unprivileged, sandboxed service, so the command it runs is `request-update.sh`,
which hands the request to the root unit appliance-update.service and waits for its outcome; where the
appliance may install itself (a development box, a root install) it can run install-release.sh directly.
The installer runs as a subprocess in its own session, so the event loop keeps serving while it works.

Installing restarts the service: a reply is sent when the install fails before the switch (the running
release stays), and otherwise the device shows its new version (or, rolled back, its old one) in its
retained status; the outcome also stays in the state directory (update/result.json).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from appliance.config import AppConfig
from appliance.fleet.commands import CommandArgs, CommandError, Handler

log = logging.getLogger(__name__)

DEVICE_UPDATER = Path("/opt/appliance/scripts/request-update.sh")
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"
ERROR_CODES = {"rolled_back": "rolled_back", "busy": "busy", "failed": "update_failed"}


class UpdateArgs(CommandArgs):
    version: str = Field(pattern=VERSION_PATTERN, description="The release to install, as its wheel reports it.")
    wheel: str = Field(min_length=5, max_length=2048, description="An http(s) URL or absolute path of the wheel.")

    @field_validator("wheel")
    @classmethod
    def _wheel(cls, value: str) -> str:
        if not re.match(r"^(https?://[^\s]+|/[^\n]*)$", value):
            raise ValueError("must be an http(s) URL or an absolute path on the device")
        if not re.split(r"[?#]", value, maxsplit=1)[0].endswith(".whl"):
            raise ValueError("must name a .whl file")
        return value


class UpdateCommand:
    """The `update` handler; one update at a time (a second one is refused while the first runs)."""

    def __init__(self, config: AppConfig, command: Sequence[str] | None = None, timeout_s: float = 1800.0) -> None:
        self.config = config
        self.command = list(command) if command else [str(DEVICE_UPDATER)]
        self.timeout_s = timeout_s
        self.running: str | None = None

    def entry(self) -> tuple[type[CommandArgs], Handler]:
        """The (args model, handler) pair for DeviceCommands' command table."""
        return UpdateArgs, self.handle

    async def handle(self, args: UpdateArgs) -> dict[str, Any]:
        if self.running is not None:
            raise CommandError("busy", f"an update to {self.running} is already running")
        installer = Path(self.command[0])
        if not (installer.is_file() and os.access(installer, os.X_OK)):
            raise CommandError("not_available", f"no installer at {installer}: provision the device first")
        self.running = args.version
        try:
            outcome = await self._install(args)
        finally:
            self.running = None
        return _reply(outcome)

    async def _install(self, args: UpdateArgs) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="appliance-update-") as scratch:
            result_file = Path(scratch) / "result.json"
            argv = [*self.command, "--version", args.version, "--wheel", args.wheel, "--result-file", str(result_file)]
            log.info("update to %s from %s: running %s", args.version, args.wheel, self.command[0])
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C or a stop of ours does not cut an install in half
            )
            last_lines: deque[str] = deque(maxlen=5)
            try:
                await asyncio.wait_for(asyncio.gather(_relay(process, last_lines), process.wait()), self.timeout_s)
            except TimeoutError:
                raise CommandError(
                    "timeout", f"no outcome within {self.timeout_s:g} s; the install goes on (see the journal)"
                ) from None
            if result_file.exists():
                outcome: dict[str, Any] = json.loads(result_file.read_text())
                return outcome
            said = last_lines[-1] if last_lines else "nothing"
            message = f"the installer exited with status {process.returncode} and no outcome: {said}"
            return {"outcome": "failed", "version": args.version, "message": message}


async def _relay(process: asyncio.subprocess.Process, last_lines: deque[str]) -> None:
    """The installer's progress into our log (the journal), keeping the last lines for the reply."""
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line:
            log.info("update: %s", line)
            last_lines.append(line)


def _reply(outcome: dict[str, Any]) -> dict[str, Any]:
    kind = str(outcome.get("outcome", "failed"))
    message = str(outcome.get("message", ""))
    if kind in ("installed", "current"):
        return {"outcome": kind, "version": outcome.get("version"), "running": outcome.get("running"),
                "message": message}  # fmt: skip
    raise CommandError(ERROR_CODES.get(kind, "update_failed"), message or f"update {kind}")
