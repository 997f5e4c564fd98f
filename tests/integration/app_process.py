"""`appliance run` (or `console`) as a subprocess on the PulseAudio rig's sound card."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.pulse_rig import PulseRig

launched: list[subprocess.Popen[bytes]] = []
"""Every process started, so what a failed test left running is killed after it (`kill_leftovers`)."""


def kill_leftovers() -> None:
    while launched:
        proc = launched.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class Appliance:
    """`appliance run` as a subprocess on the rig's sound card."""

    def __init__(
        self,
        rig: PulseRig,
        models_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        command: tuple[str, ...] = ("run", "--json"),
    ) -> None:
        self.log = Path(rig.root) / "appliance.err"
        self.out = Path(rig.root) / "appliance.out"
        environment = {**os.environ, **rig.env, "APPLIANCE_MODELS__DIR": str(models_dir), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", *command, *args],
            env=environment,
            stdout=self.out.open("w"),
            stderr=self.log.open("w"),
        )
        launched.append(self.proc)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text() + self.out.read_text():
            assert self.proc.poll() is None, f"appliance exited {self.proc.returncode}: {self.log.read_text()}"
            assert time.monotonic() < deadline, f"no {text!r} in time: {self.log.read_text()}"
            time.sleep(0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        log = self.log.read_text()
        assert "stopping took over" not in log, log  # the exit deadline fired: something hung
        return code
