"""`appliance bench --fleet N` at a size that fits the test run: the same phases the 2,000-device figures
in the README come from, on real Mosquittos (one, and two bridged), with the real simulator and operator
commands. Timing is not asserted (a shared machine); completeness is: nothing lost, every device back."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Cli


@pytest.mark.parametrize("bridged", [False, True], ids=["one-broker", "bridged"])
def test_the_fleet_bench_reaches_every_device_in_every_phase(cli: Cli, bridged: bool) -> None:
    devices = 12
    result = cli("bench", "--fleet", str(devices), "--jitter", "1", "--json", *(["--bridged"] if bridged else []))
    assert result.code == 0, result.stderr + result.stdout
    fleet = json.loads(result.stdout)["fleet"]
    assert fleet["devices"] == devices and fleet["brokers"] == (2 if bridged else 1)
    phases = fleet["phases"]
    assert all(run["online_listed"] == devices for key, run in phases["ls"].items() if key.startswith("port_"))
    for change in ("set_all", "desired_while_away"):
        assert phases[change]["applied"] == devices and phases[change]["lost"] == 0, phases[change]
        assert 0 <= phases[change]["p50_ms"] <= phases[change]["p99_ms"]
    assert phases["set_all"]["replies"] == devices
    rollout = phases["rollout"]
    assert rollout["state"] == "done" and rollout["healthy"] == devices and rollout["batches"] >= 3
    assert phases["broker_restart"]["online_listed_after"] == devices
    per_thousand = fleet["per_1000_devices"]
    assert per_thousand["broker_rss_mb"] > 0 and per_thousand["simulator_rss_mb"] > 0


def test_bridged_without_fleet_is_a_usage_error(cli: Cli) -> None:
    result = cli("bench", "--bridged")
    assert result.code == 2
    assert "--fleet" in result.stderr
