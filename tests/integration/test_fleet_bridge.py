"""The fleet beyond one broker: two real Mosquitto brokers bridged both ways (the shipped
mosquitto/bridge.conf), simulated devices split across them, operators on either broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import __version__
from tests.integration.bridge import bridged_mosquittos
from tests.integration.broker import Broker
from tests.integration.test_fleet import fleet
from tests.integration.test_fleet_scale import Running, json_lines, wait_until

PER_BROKER = 10
"""Devices on each broker: on A nine `a-` devices and the one that moves (`mover-0001`), on B ten `b-`."""
DEVICES = 2 * PER_BROKER
MOVER = "mover-0001"


class Bridged:
    def __init__(self, a: Broker, b: Broker, models_dir: Path, tmp_path: Path) -> None:
        self.a, self.b = a, b
        self.models_dir = models_dir
        self.tmp_path = tmp_path
        self.mover_state = tmp_path / "mover-state"
        self.running: list[Running] = []

    def simulate(self, broker: Broker, name: str, prefix: str, devices: int, *options: str) -> Running:
        sim = Running(
            broker,
            self.tmp_path,
            name,
            "simulate",
            "--devices",
            str(devices),
            "--prefix",
            prefix,
            "--jitter",
            "1",
            "--report-every",
            "0.5",
            *options,
            env={"APPLIANCE_MODELS__DIR": str(self.models_dir)},
        )
        self.running.append(sim)
        sim.wait_for(f"{devices}/{devices} connected")
        return sim

    def mover_on(self, broker: Broker, name: str) -> Running:
        """The device that moves: one simulated device, its state dir kept across brokers."""
        return self.simulate(broker, name, "mover-", 1, "--group", "hall", "--state-dir", str(self.mover_state))


@pytest.fixture
def bridged(models_dir: Path, tmp_path: Path) -> Iterator[Bridged]:
    with bridged_mosquittos() as (a, b):
        rig = Bridged(a, b, models_dir, tmp_path)
        try:
            rig.simulate(a, "sim-a", "a-", PER_BROKER - 1, "--group", "kitchen,hall")
            rig.simulate(b, "sim-b", "b-", PER_BROKER, "--group", "kitchen,hall")
            yield rig
        finally:
            for sim in rig.running:
                sim.kill()


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:04d}" for n in range(1, count + 1)]


EVERY_DEVICE = sorted([*ids("a-", PER_BROKER - 1), *ids("b-", PER_BROKER), MOVER])


def listed(broker: Broker) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in json_lines(fleet(broker, "--json", "ls"))}


def get(broker: Broker, target: str) -> list[dict[str, Any]]:
    return json_lines(fleet(broker, "get", target))


def test_operators_on_either_broker_reach_every_device(bridged: Bridged) -> None:
    bridged.mover_on(bridged.a, "mover-on-a")
    hall = set()
    for operator in (bridged.a, bridged.b):
        rows = listed(operator)
        assert sorted(rows) == EVERY_DEVICE
        assert all(r["state"] == "online" and r["version"] == __version__ for r in rows.values())
        hall = {d for d, r in rows.items() if r["group"] == "hall"}

        pings = json_lines(fleet(operator, "--json", "--timeout", "30", "cmd", "all", "ping"))
        assert sorted(p["device"] for p in pings) == EVERY_DEVICE  # each once: the bridge does not loop
        assert all(p["ok"] and p["result"]["pong"] for p in pings)

    # Desired state for the whole fleet, written on A, applied by the devices on B too.
    applied = json_lines(fleet(bridged.a, "--json", "--timeout", "30", "set", "all", "audio.volume=35"))
    assert sorted(r["device"] for r in applied) == EVERY_DEVICE
    assert all(r["ok"] and r["result"]["applied"] == ["audio.volume"] for r in applied)
    for operator in (bridged.a, bridged.b):
        seen = get(operator, "all")
        assert sorted(s["device"] for s in seen) == EVERY_DEVICE
        assert all(s["in_sync"] and s["config"]["audio"]["volume"] == 35 for s in seen)

    # A group's change, written on B: the group's devices on both brokers take it, the others not.
    changed = json_lines(fleet(bridged.b, "--json", "--timeout", "30", "set", "group:hall", "agent.name=chat"))
    assert sorted(r["device"] for r in changed) == sorted(hall) and all(r["ok"] for r in changed)
    assert any(d.startswith("a-") for d in hall) and any(d.startswith("b-") for d in hall)
    agents = {s["device"]: s["config"]["agent"]["name"] for s in get(bridged.a, "all")}
    assert agents == {d: "chat" if d in hall else "assistant" for d in EVERY_DEVICE}

    # A staged rollout run from B: its canary and batches reach the devices on both brokers.
    done = fleet(bridged.b, "--timeout", "15", "rollout", "start", "all", "audio.volume=25", "--name", "bridged",
                 "--canary", "10%", "--batch", "50%", "--pause", "0.2", "--settle", "0.5", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["devices"]) == EVERY_DEVICE
    assert {s["config"]["audio"]["volume"] for s in get(bridged.a, "all")} == {25}


def test_a_device_moved_to_the_other_broker_keeps_its_retained_state(bridged: Bridged) -> None:
    on_a = bridged.mover_on(bridged.a, "mover-on-a")
    done = json_lines(fleet(bridged.a, "--json", "--timeout", "30", "set", MOVER, "audio.volume=44"))
    assert [(r["device"], r["ok"]) for r in done] == [(MOVER, True)]
    on_a.stop()  # a clean stop: it says offline itself, on A, and the bridge carries that to B
    wait_until(lambda: listed(bridged.b)[MOVER]["state"] == "offline", "B sees the mover offline")

    # While it is away, an operator on A changes its desired config: a retained document on A (and B).
    offline = fleet(bridged.a, "set", MOVER, "endpointing.min_silence_ms=450")
    assert offline.returncode == 0 and MOVER in offline.stderr, offline.stderr

    bridged.mover_on(bridged.b, "mover-on-b")  # the same id and state dir, now on B
    for operator in (bridged.b, bridged.a):
        assert listed(operator)[MOVER]["state"] == "online"

    def in_sync() -> dict[str, Any] | None:
        (seen,) = get(bridged.b, MOVER)
        return seen if seen["in_sync"] and seen["desired"]["versions"].get("device") == 2 else None

    seen = wait_until(in_sync, "the moved device applied the desired config it found on B", timeout=60)
    assert seen["reported"]["versions"]["device"] == 2
    assert seen["config"]["endpointing"]["min_silence_ms"] == 450  # the change made while it was away
    assert seen["config"]["audio"]["volume"] == 44  # what it had on A, from its saved config
    (from_a,) = get(bridged.a, MOVER)
    assert from_a["in_sync"] and from_a["reported"] == seen["reported"]

    # Commands from either side reach it on B.
    for operator in (bridged.a, bridged.b):
        (pong,) = json_lines(fleet(operator, "--json", "--timeout", "30", "cmd", MOVER, "ping"))
        assert pong["ok"] and pong["device"] == MOVER
    assert sorted(listed(bridged.a)) == EVERY_DEVICE


def test_the_readme_shows_the_bridge_config_and_emqx_rules_that_are_shipped() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text().split("### More than one broker", 1)[1]
    shipped = [
        line for line in (root / "mosquitto" / "bridge.conf").read_text().splitlines() if line and line[0] != "#"
    ]
    shown = readme.split("```\n", 2)[1].split("```", 1)[0].splitlines()
    assert shown == shipped
    emqx = readme.split("```erlang\n", 1)[1].split("```", 1)[0]
    assert emqx.strip() and all(line in (root / "cluster" / "emqx-acl.conf").read_text() for line in emqx.splitlines())
