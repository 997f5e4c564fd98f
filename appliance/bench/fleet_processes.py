"""The processes a fleet bench watches: simulators (`appliance fleet simulate`) and brokers, with their CPU
time and memory read from /proc, so the figures are per process and not the bench's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONNECTED = re.compile(rb"simulate: (\d+)/(\d+) connected")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    rss_mb: float
    peak_mb: float


def usage(pid: int) -> Usage:
    """CPU seconds so far, resident and peak resident memory of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    status = Path(f"/proc/{pid}/status").read_text()
    return Usage(cpu_s, _kb(status, "VmRSS") / 1024, _kb(status, "VmHWM") / 1024)


def _kb(status: str, key: str) -> float:
    found = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


class Simulator:
    """`appliance fleet simulate` against one broker, its connected count followed from its report lines."""

    def __init__(self, port: int, devices: int, prefix: str, state_dir: Path, jitter_s: float) -> None:
        self.port = port
        self.devices = devices
        self.prefix = prefix
        self.state_dir = state_dir
        self.jitter_s = jitter_s
        self.connected = 0
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.tail: list[str] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def ids(self) -> list[str]:
        return [f"{self.prefix}{n:04d}" for n in range(1, self.devices + 1)]

    async def start(self) -> None:
        self.connected = 0
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{self.port}", "simulate",
            "--devices", str(self.devices), "--prefix", self.prefix, "--state-dir", str(self.state_dir),
            "--jitter", str(self.jitter_s), "--report-every", "0.25",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            found = CONNECTED.search(line)
            if found:
                self.connected = int(found.group(1))
            else:
                self.tail = [*self.tail[-9:], line.decode(errors="replace").rstrip()]

    async def wait_connected(self, timeout_s: float) -> float:
        """Seconds until every device is connected (TimeoutError past `timeout_s`)."""
        started = time.monotonic()
        async with asyncio.timeout(timeout_s):
            while self.connected < self.devices:
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(f"the simulator exited: {' | '.join(self.tail)}")
                await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def stop(self) -> None:
        """SIGTERM: every device says offline and disconnects."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
