"""Staged rollouts on a real Mosquitto, over simulated devices that run the real device code: canary first,
then batches; a failed canary halts and rolls back what it touched; a rollout paused by one operator is
resumed by another from its retained document."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import Broker, mosquitto
from tests.integration.test_fleet import fleet
from tests.integration.test_fleet_scale import Running, wait_until

DEVICES = 10


@pytest.fixture
def broker() -> Iterator[Broker]:
    with mosquitto() as broker:
        yield broker


@pytest.fixture
def simulator(broker: Broker, models_dir: Path, tmp_path: Path) -> Iterator[Running]:
    sim = Running(broker, tmp_path, "simulate", "simulate", "--devices", str(DEVICES), "--jitter", "1",
                  "--report-every", "0.5", env={"APPLIANCE_MODELS__DIR": str(models_dir)})  # fmt: skip
    try:
        sim.wait_for(f"{DEVICES}/{DEVICES} connected")
        yield sim
    finally:
        sim.kill()


def rollout(broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    return fleet(broker, "--timeout", "5", "rollout", *args)


def reported_volumes(broker: Broker) -> dict[str, Any]:
    done = fleet(broker, "get", "all")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {row["device"]: row["config"].get("audio", {}).get("volume") for row in rows}


def report_errors_from_the_canary(broker: Broker, name: str, running: Running, timeout: float = 60) -> str:
    """Once rollout `name` starts its canary, publish error events from its first device until the operator's
    rollout process ends (a device whose new config breaks a provider); returns that device."""
    import asyncio

    import aiomqtt

    async def report() -> str:
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe(f"appliance/rollout/{name}", qos=1)
            canary: list[str] = []
            async with asyncio.timeout(timeout):
                async for message in client.messages:
                    document = json.loads(bytes(message.payload))
                    canary = [d for d, r in document["devices"].items() if r["result"] == "applying"]
                    if canary:
                        break
            while running.proc.poll() is None:
                error = {"type": "error", "message": "tts: voice file missing", "ts": 0}
                await client.publish(f"appliance/{canary[0]}/events", json.dumps(error), qos=1)
                await asyncio.sleep(0.2)
            return canary[0]

    return asyncio.run(report())


FAST = ("--pause", "0.2", "--settle", "0.5")


def test_a_rollout_goes_canary_first_then_in_batches_to_every_device(broker: Broker, simulator: Running) -> None:
    done = rollout(broker, "start", "all", "audio.volume=35", "--name", "quiet", "--canary", "10%", "--batch", "50%",
                   *FAST, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["state"] == "done" and [len(b) for b in document["batches"]] == [1, 5, 4]
    assert {r["result"] for r in document["devices"].values()} == {"ok"} and len(document["devices"]) == DEVICES
    assert set(reported_volumes(broker).values()) == {35}
    assert "canary: 1 of 1 devices healthy" in done.stderr
    status = rollout(broker, "status", "quiet", "--json")
    assert json.loads(status.stdout)["state"] == "done"  # retained: any operator reads it later


def test_a_failed_canary_halts_the_rollout_and_rolls_back_what_it_touched(broker: Broker, simulator: Running) -> None:
    assert fleet(broker, "set", "all", "audio.volume=35").returncode == 0
    wait_until(lambda: set(reported_volumes(broker).values()) == {35}, "every device at volume 35")
    # A value the devices refuse: the canary fails, and nothing after it is touched.
    done = rollout(broker, "start", "all", "audio.volume=300", "--name", "loud", "--canary", "20%", *FAST, "--json")
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    canary = document["batches"][0]
    assert document["state"] == "halted" and len(canary) == 2
    assert set(document["devices"]) == set(canary)  # the later batches were never touched
    assert {document["devices"][d]["result"] for d in canary} == {"rolled_back"}
    assert all(document["devices"][d]["before"] == {"audio.volume": 35} for d in canary)
    assert set(reported_volumes(broker).values()) == {35}
    halted = rollout(broker, "resume", "loud")
    assert halted.returncode == 1 and "halted: it cannot be resumed" in halted.stderr


def test_an_error_event_from_a_canary_device_halts_the_rollout(
    broker: Broker, simulator: Running, tmp_path: Path
) -> None:
    """The change applies, but a canary device reports an error while the batch settles (injected here, as a
    device whose new config breaks a provider would): the canary fails on it and is rolled back."""
    running = Running(broker, tmp_path, "operator", "--timeout", "5", "rollout", "start", "all", "audio.volume=15",
                      "--name", "broken", "--canary", "10%", "--settle", "3", "--json", env={})  # fmt: skip

    broken = report_errors_from_the_canary(broker, "broken", running, timeout=30)
    assert running.proc.wait(30) != 0, running.err.read_text()
    document = json.loads(rollout(broker, "status", "broken", "--json").stdout)
    assert document["state"] == "halted", document
    assert document["devices"][broken]["result"] == "rolled_back"
    assert "error event: tts: voice file missing" in running.err.read_text() + json.dumps(document)
    assert set(document["devices"]) == set(document["batches"][0])  # no batch after the canary was touched


def test_a_paused_rollout_is_resumed_by_another_operator(broker: Broker, simulator: Running, tmp_path: Path) -> None:
    first = Running(broker, tmp_path, "operator-a", "--timeout", "5", "rollout", "start", "all", "audio.volume=20",
                    "--name", "slow", "--canary", "10%", "--batch", "30%", "--pause", "4", "--settle", "0.5",
                    env={})  # fmt: skip
    first.wait_for("canary: 1 of 1 devices healthy")
    paused = rollout(broker, "pause", "slow")
    assert paused.returncode == 0, paused.stderr
    first.proc.wait(60)
    assert "paused" in first.err.read_text() and first.proc.returncode == 0
    document = json.loads(rollout(broker, "status", "slow", "--json").stdout)
    assert document["state"] == "paused" and 1 <= document["next_batch"] < len(document["batches"])
    resumed = rollout(broker, "resume", "slow", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "done"
    assert set(reported_volumes(broker).values()) == {20}


def test_bad_rollout_options_are_one_line_and_exit_2(broker: Broker) -> None:
    for args, said in (
        (("start", "all", "audio.volume=1", "--canary", "lots"), "--canary takes a share like 5% or 0.05"),
        (("status", "no/such"), "a rollout name is 1-64 letters"),
    ):
        done = subprocess.run([sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{broker.port}",
                               "rollout", *args], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
