"""`appliance bench --fleet N [--bridged]`: the fleet side at size, on this machine.

N simulated devices (the real device-side fleet code, `appliance fleet simulate`) on one local Mosquitto,
or split over two bridged both ways; the operator side is the real `appliance fleet` command line, run
as an operator would. Measured, in order:

- connect: every device online from a cold start (connects spread over the jitter window);
- idle: broker and simulator CPU and memory with every device connected (per 1,000 devices);
- `fleet ls` on each broker: time and devices listed;
- `fleet set all`: devices that applied it, lost ones, p50/p99 from the desired document reaching the
  broker to each device's `config/reported` showing it;
- desired state for devices that are away: written while every simulator is down, then the devices
  start again: time until each applied it;
- a rollout over all of them (canary 2 %, batches of 20 %): time and devices healthy;
- a broker restart (the first broker): time until every device is connected again.

Timing is taken by one MQTT subscriber on the first broker (with a bridge, it sees both sides), so the
figures are what an observer of the fleet sees, not what each command prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.bench.fleet_processes import Simulator, Usage, usage
from appliance.bench.mosquitto import LocalMosquitto, bridged_pair, crosses, single

PREFIX = "appliance"


class FleetBenchError(RuntimeError):
    pass


class ReportedWatch:
    """Who reported which audio volume, and when; when a desired document for `all` arrived."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.applied: dict[int, dict[str, float]] = {}  # volume -> device -> arrival (monotonic)
        self.desired_at: dict[int, float] = {}  # volume -> arrival of the `all` desired document asking for it
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> ReportedWatch:
        self._task = asyncio.create_task(self._watch())
        async with asyncio.timeout(30):
            await self._ready.wait()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        import aiomqtt

        while True:  # across the broker restart
            with contextlib.suppress(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", self.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
                    await client.subscribe(f"{PREFIX}/+/config/reported", qos=0)
                    await client.subscribe(f"{PREFIX}/all/config/desired", qos=0)
                    self._ready.set()
                    async for message in client.messages:
                        self._seen(str(message.topic), bytes(message.payload), time.monotonic())
            await asyncio.sleep(0.5)

    def _seen(self, topic: str, payload: bytes, now: float) -> None:
        try:
            document = json.loads(payload)
        except ValueError:
            return
        if not isinstance(document, dict):
            return
        if topic.startswith(f"{PREFIX}/all/"):
            volume = ((document.get("patch") or {}).get("audio") or {}).get("volume")
            if isinstance(volume, int):
                self.desired_at.setdefault(volume, now)
            return
        volume = ((document.get("config") or {}).get("audio") or {}).get("volume")
        if isinstance(volume, int):
            self.applied.setdefault(volume, {}).setdefault(topic.split("/")[1], now)

    async def until_applied(self, volume: int, devices: int, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while len(self.applied.get(volume, {})) < devices:
                    await asyncio.sleep(0.05)

    def spread(self, volume: int, since: float | None = None) -> dict[str, Any]:
        start = since if since is not None else self.desired_at.get(volume)
        times = sorted(t - start for t in self.applied.get(volume, {}).values()) if start is not None else []
        return {
            "applied": len(times),
            "p50_ms": round(1000 * statistics.median(times)) if times else None,
            "p99_ms": round(1000 * times[min(len(times) - 1, int(0.99 * len(times)))]) if times else None,
            "last_ms": round(1000 * times[-1]) if times else None,
        }


async def fleet(port: int, *args: str, timeout_s: float = 600) -> tuple[float, str, str, int]:
    """`appliance fleet --broker ... ARGS` as an operator runs it: seconds, stdout, stderr, exit status."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{port}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(timeout_s):
        out, err = await process.communicate()
    return time.monotonic() - started, out.decode(), err.decode(), int(process.returncode or 0)


class Phases:
    """CPU seconds of the brokers and simulators in each phase, and their memory at its end."""

    def __init__(self, brokers: list[LocalMosquitto], simulators: list[Simulator]) -> None:
        self.brokers = brokers
        self.simulators = simulators
        self.results: dict[str, dict[str, Any]] = {}

    def _usage(self) -> tuple[dict[int, Usage], dict[int, Usage]]:
        """By pid, for the processes alive now (a simulator stopped and started again is a new pid)."""
        return _alive([b.process.pid for b in self.brokers if b.process]), _alive(
            [s.process.pid for s in self.simulators if s.process]
        )

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> Any:
        before = self._usage()
        started = time.monotonic()
        record: dict[str, Any] = {}
        yield record
        seconds = time.monotonic() - started
        after = self._usage()
        record["seconds"] = round(seconds, 2)
        for kind, was, now in (("broker", before[0], after[0]), ("simulator", before[1], after[1])):
            cpu = sum(n.cpu_s - (was[pid].cpu_s if pid in was else 0.0) for pid, n in now.items())
            record[f"{kind}_cpu_pct"] = round(100 * cpu / max(seconds, 1e-6), 1)
            record[f"{kind}_rss_mb"] = round(sum(n.rss_mb for n in now.values()), 1)
        self.results[name] = record


def _alive(pids: list[int]) -> dict[int, Usage]:
    found: dict[int, Usage] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = usage(pid)
    return found


async def fleet_bench(devices: int, bridged: bool, jitter_s: float | None = None) -> dict[str, Any]:
    if devices < 2:
        raise FleetBenchError("bench --fleet needs at least 2 devices")
    root = Path(tempfile.mkdtemp(prefix="appliance-fleet-bench-"))
    root.chmod(0o755)  # mosquitto runs as its own user and keeps its persistence file in here
    brokers = bridged_pair(root) if bridged else single(root)
    jitter = jitter_s if jitter_s is not None else max(2.0, devices / 200)
    shares = [devices - devices // 2, devices // 2] if bridged else [devices]
    prefixes = ["a-", "b-"] if bridged else ["sim-"]
    simulators = [
        Simulator(broker.port, count, prefix, root / f"state-{prefix}", jitter)
        for broker, count, prefix in zip(brokers, shares, prefixes, strict=True)
    ]
    try:
        if bridged:
            await _bridge_up(brokers)
        return await _measure(brokers, simulators, devices, jitter)
    finally:
        for simulator in simulators:
            await simulator.stop()
        for broker in brokers:
            broker.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _bridge_up(brokers: list[LocalMosquitto]) -> None:
    deadline = time.monotonic() + 30
    for sender, receiver in ((brokers[0], brokers[1]), (brokers[1], brokers[0])):
        while not await crosses(sender.port, receiver.port, 1.0):
            if time.monotonic() > deadline:
                raise FleetBenchError(f"the bridge never carried {sender.port} -> {receiver.port}")


async def _measure(
    brokers: list[LocalMosquitto], simulators: list[Simulator], devices: int, jitter: float
) -> dict[str, Any]:
    first = brokers[0]
    result: dict[str, Any] = {"devices": devices, "brokers": len(brokers), "jitter_s": jitter}
    connect_timeout = 120 + 2 * jitter
    for simulator in simulators:
        await simulator.start()
    phases = Phases(brokers, simulators)
    async with phases.phase("connect") as record:
        waits = await asyncio.gather(*(s.wait_connected(connect_timeout) for s in simulators))
        record["all_online_s"] = round(max(waits), 2)
    async with phases.phase("idle"):
        await asyncio.sleep(10)

    async with phases.phase("ls") as record:
        for broker in brokers:
            seconds, out, err, status = await fleet(broker.port, "--json", "ls")
            listed = sum(1 for line in out.splitlines() if json.loads(line).get("state") == "online")
            record[f"port_{broker.port}"] = {"seconds": round(seconds, 2), "online_listed": listed, "exit": status}
            if status:
                record["error"] = err.strip()[-300:]

    async with ReportedWatch(first.port) as watch:
        async with phases.phase("set_all") as record:
            seconds, out, err, status = await fleet(
                brokers[-1].port, "--json", "--timeout", "120", "set", "all", "audio.volume=31"
            )
            await watch.until_applied(31, devices, 60)
            replies = sum(1 for line in out.splitlines() if json.loads(line).get("ok"))
            record.update(watch.spread(31), command_s=round(seconds, 2), replies=replies, exit=status)
            record["lost"] = devices - record["applied"]

        async with phases.phase("desired_while_away") as record:
            for simulator in simulators:
                await simulator.stop()
            seconds, _out, err, status = await fleet(first.port, "set", "all", "audio.volume=32")
            started = time.monotonic()
            for simulator in simulators:
                await simulator.start()
            await watch.until_applied(32, devices, connect_timeout)
            record.update(watch.spread(32, since=started), exit=status)
            record["lost"] = devices - record["applied"]
            await asyncio.gather(*(s.wait_connected(connect_timeout) for s in simulators))

        async with phases.phase("rollout") as record:
            seconds, out, err, status = await fleet(
                brokers[-1].port, "--timeout", "60", "rollout", "start", "all", "audio.volume=33", "--name",
                f"bench-{int(time.time())}", "--canary", "2%", "--batch", "20%", "--pause", "1", "--settle", "2",
                "--json", timeout_s=1800,
            )  # fmt: skip
            document = json.loads(out) if out.strip() else {}
            results = [d.get("result") for d in document.get("devices", {}).values()]
            record.update(state=document.get("state"), batches=len(document.get("batches", [])),
                          healthy=results.count("ok"), failed=results.count("failed"), exit=status)  # fmt: skip
            if status:
                record["error"] = err.strip()[-300:]

    async with phases.phase("broker_restart") as record:
        first.stop()
        stopped = time.monotonic()
        with contextlib.suppress(TimeoutError):  # the broker closed every connection: the links see it at once
            async with asyncio.timeout(15):
                while sum(s.connected for s in simulators) == devices:
                    await asyncio.sleep(0.02)
        first.start()
        restarted = time.monotonic()
        record["down_s"] = round(restarted - stopped, 2)
        await asyncio.gather(*(s.wait_connected(connect_timeout) for s in simulators))
        record["all_online_s"] = round(time.monotonic() - restarted, 2)
        listed = 0
        for _attempt in range(10):  # the last ones' online status may still be on its way (or crossing the bridge)
            _seconds, out, _err, _status = await fleet(first.port, "--json", "ls")
            listed = sum(1 for line in out.splitlines() if json.loads(line).get("state") == "online")
            if listed == devices:
                break
            await asyncio.sleep(1.0)
        record["online_listed_after"] = listed
        record["listed_s"] = round(time.monotonic() - restarted, 2)

    result["phases"] = phases.results
    idle = phases.results["idle"]
    per_thousand = 1000 / devices
    result["per_1000_devices"] = {
        "broker_cpu_pct": round(idle["broker_cpu_pct"] * per_thousand, 2),
        "broker_rss_mb": round(idle["broker_rss_mb"] * per_thousand, 1),
        "simulator_cpu_pct": round(idle["simulator_cpu_pct"] * per_thousand, 2),
        "simulator_rss_mb": round(idle["simulator_rss_mb"] * per_thousand, 1),
    }
    return result
