"""The `update` command: install a signed release over MQTT the way an operator would, and answer.

`{"id", "release": "<http(s) URL or absolute path>", "sha256": "<hex>", "allow_downgrade": false}`. The
device fetches the release into its state directory and checks it here, in the unprivileged process,
before anything in it is unpacked or run as root: the sha256 announced, a signature by one of `[update]
trusted_keys`, every file against the signed manifest, and no downgrade unless asked for. Refusals are
`untrusted_release`, `hash_mismatch` and `downgrade`; an unsigned wheel (the old `{"version", "wheel"}`
form) is a `bad_request`. Only then is the file handed to the installer, which checks it again: it runs
as root and does not trust this process.

The installer is the same install path as a person at the box (firmware_scripts/install-release.sh: a
new release beside the running one, offline from its wheelhouse, doctor, atomic switch, restart, health
check, rollback on failure). On a device the appliance is sandboxed, so the command it runs is
`request-update.sh`, which hands the request to the root unit appliance-update.service and waits for
its outcome; where the appliance may install itself `[update] installer` can name install-release.sh. The
installer runs as a subprocess in its own session, so the event loop keeps serving while it works.

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
import shutil
import tempfile
import urllib.request
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from appliance import __version__
from appliance.config import AppConfig, redact_text
from appliance.fleet.commands import CommandArgs, CommandError, Handler
from appliance.release.errors import RefusalCode, ReleaseRefused, ReleaseUsageError
from appliance.release.keys import TrustedKey, trusted_keys
from appliance.release.verify import VerifiedRelease, check_not_older, verify_release

log = logging.getLogger(__name__)

MAX_RELEASE_BYTES = 4 << 30
ERROR_CODES = {
    "rolled_back": "rolled_back",
    "busy": "busy",
    "failed": "update_failed",
    **{code.value: code.value for code in RefusalCode},
}


class UpdateArgs(CommandArgs):
    wheel: None = Field(default=None, description="Refused: the old, unsigned form.")
    release: str = Field(min_length=2, max_length=2048, description="An http(s) URL or absolute path of the release.")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="The release file's sha256, hex.")
    allow_downgrade: bool = Field(default=False, description="Install even if older than the running release.")

    @field_validator("wheel", mode="before")
    @classmethod
    def _no_wheel(cls, value: object) -> None:
        raise ValueError(
            'an unsigned wheel is not installed: send a signed release, {"release": URL or path, "sha256": HEX} '
            "(appliance release build, sign)"
        )

    @field_validator("release")
    @classmethod
    def _release(cls, value: str) -> str:
        if not re.match(r"^(https?://[^\s]+|/[^\n\r]*)$", value):
            raise ValueError("must be an http(s) URL or an absolute path on the device")
        return value


class UpdateCommand:
    """The `update` handler; one update at a time (a second one is refused while the first runs)."""

    def __init__(
        self,
        config: AppConfig,
        command: Sequence[str] | None = None,
        timeout_s: float = 1800.0,
        running_version: str = __version__,
    ) -> None:
        self.config = config
        self.running_version = running_version
        """What a release must not be older than (unless a downgrade is asked for)."""
        self.command = list(command) if command else [config.update.installer]
        self.timeout_s = timeout_s
        self.running: str | None = None

    @property
    def incoming(self) -> Path:
        """Where a release is fetched to: the state directory, which the root installer reads from."""
        return self.config.state.dir / "update" / "incoming"

    def entry(self) -> tuple[type[CommandArgs], Handler]:
        """The (args model, handler) pair for DeviceCommands' command table."""
        return UpdateArgs, self.handle

    async def handle(self, args: UpdateArgs) -> dict[str, Any]:
        if self.running is not None:
            raise CommandError("busy", f"an update to {self.running} is already running")
        installer = Path(self.command[0])
        if not (installer.is_file() and os.access(installer, os.X_OK)):
            raise CommandError("not_available", f"no installer at {installer}: provision the device first")
        self.running = redact_text(args.release)
        try:
            keys = self._trusted_keys()
            release = await self._fetch(args)
            try:
                verified = await asyncio.to_thread(self._verify, release, keys, args)
                self.running = verified.manifest.version
                outcome = await self._install(release, verified, args)
            finally:
                release.unlink(missing_ok=True)
        finally:
            self.running = None
        return _reply(outcome)

    def _trusted_keys(self) -> list[TrustedKey]:
        try:
            keys = trusted_keys(self.config.update.trusted_keys)
        except ReleaseUsageError as exc:
            raise CommandError(RefusalCode.UNTRUSTED.value, str(exc)) from None
        if not keys:
            raise CommandError(RefusalCode.UNTRUSTED.value, "no trusted keys are configured ([update] trusted_keys)")
        return keys

    async def _fetch(self, args: UpdateArgs) -> Path:
        """The release, copied or downloaded into the state directory (earlier leftovers removed)."""
        shutil.rmtree(self.incoming, ignore_errors=True)
        self.incoming.mkdir(parents=True)
        target = self.incoming / f"{args.sha256.lower()[:16]}.release.tar"
        try:
            await asyncio.to_thread(_copy_limited, args.release, target)
        except (OSError, ValueError) as exc:
            target.unlink(missing_ok=True)
            raise CommandError("fetch_failed", redact_text(f"cannot fetch {args.release}: {exc}")) from None
        return target

    def _verify(self, release: Path, keys: Sequence[TrustedKey], args: UpdateArgs) -> VerifiedRelease:
        try:
            verified = verify_release(release, keys, args.sha256)
            check_not_older(verified.manifest.version, self.running_version, args.allow_downgrade)
        except ReleaseRefused as exc:
            raise CommandError(exc.code.value, exc.message) from None
        log.info("release %s verified (signed by key %s)", verified.manifest.version, verified.signed_by)
        return verified

    async def _install(self, release: Path, verified: VerifiedRelease, args: UpdateArgs) -> dict[str, Any]:
        version = verified.manifest.version
        with tempfile.TemporaryDirectory(prefix="appliance-update-") as scratch:
            result_file = Path(scratch) / "result.json"
            argv = [*self.command, "--release", str(release), "--sha256", verified.sha256]
            if args.allow_downgrade:
                argv.append("--allow-downgrade")
            argv += ["--result-file", str(result_file)]
            log.info("update to %s: running %s", version, self.command[0])
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
            return {"outcome": "failed", "version": version, "message": message}


def _copy_limited(source: str, target: Path) -> None:
    """Copy a local file or download a URL to `target`, refusing more than MAX_RELEASE_BYTES."""
    opened = urllib.request.urlopen(source, timeout=60) if re.match(r"^https?://", source) else open(source, "rb")  # noqa: SIM115
    copied = 0
    with opened as stream, target.open("xb") as out:
        while chunk := stream.read(1 << 20):
            copied += len(chunk)
            if copied > MAX_RELEASE_BYTES:
                raise ValueError(f"larger than {MAX_RELEASE_BYTES >> 30} GiB")
            out.write(chunk)


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
