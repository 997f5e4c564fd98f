"""The fleet at scale on a real Mosquitto: simulated devices running the real device code, `fleet top`, and
the Prometheus exporter (one, and two splitting a shared subscription)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance import __version__
from tests.integration.broker import Broker, mosquitto
from tests.integration.test_fleet import fleet

DEVICES = 24
"""Enough to be a fleet, small enough for a shared 2-core box; dealt over two groups."""


class Running:
    """An `appliance fleet ...` process that keeps running (the simulator, an exporter)."""

    def __init__(self, broker: Broker, tmp_path: Path, name: str, *args: str, env: dict[str, str]) -> None:
        self.err = tmp_path / f"{name}.err"
        self.out = tmp_path / f"{name}.out"
        command = [sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{broker.port}", *args]
        self.proc = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=self.out.open("w"), stderr=self.err.open("w")
        )

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.err.read_text())) is None:
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, f"no {pattern!r}: {self.err.read_text()}"
            time.sleep(0.1)
        return found

    def stop(self) -> str:
        """SIGTERM, as systemd stops it; returns its stdout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        return self.out.read_text()

    def kill(self) -> None:
        """At the end of a test, passed or not: SIGTERM first, so a simulator removes its temporary state
        folder (SIGKILL left one in /tmp per run), then SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def broker() -> Iterator[Broker]:
    with mosquitto() as broker:
        yield broker


@pytest.fixture
def simulator(broker: Broker, models_dir: Path, tmp_path: Path) -> Iterator[Running]:
    sim = Running(
        broker,
        tmp_path,
        "simulate",
        "simulate",
        "--devices",
        str(DEVICES),
        "--group",
        "kitchen,hall",
        "--jitter",
        "2",
        "--telemetry-interval",
        "1",
        "--report-every",
        "0.5",
        env={"APPLIANCE_MODELS__DIR": str(models_dir)},
    )
    try:
        sim.wait_for(f"{DEVICES}/{DEVICES} connected")
        yield sim
    finally:
        sim.kill()


@pytest.fixture
def start_exporter(broker: Broker, tmp_path: Path) -> Iterator[Callable[[str], tuple[Running, str]]]:
    started: list[Running] = []

    def start(name: str) -> tuple[Running, str]:
        exporter = Running(broker, tmp_path, name, "exporter", "--port", "0", "--bind", "127.0.0.1", env={})
        started.append(exporter)
        port = exporter.wait_for(r"serving http://127\.0\.0\.1:(\d+)/metrics").group(1)
        exporter.wait_for("mqtt connected")
        return exporter, f"http://127.0.0.1:{port}/metrics"

    yield start
    for exporter in started:
        exporter.kill()


def json_lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample: (name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.3)
    return result


def top_rows(broker: Broker, *args: str) -> list[dict[str, Any]]:
    return json_lines(fleet(broker, "top", "--once", "--json", *args))


def turns_reported(broker: Broker) -> list[dict[str, Any]] | None:
    """The rows once every device's telemetry shows its turn (p95 set), else None."""
    rows = top_rows(broker)
    return rows if len(rows) == DEVICES and all(r["p95"] is not None for r in rows) else None


def test_simulated_devices_are_listed_answer_commands_and_follow_desired_state(
    broker: Broker, simulator: Running
) -> None:
    listed = json_lines(fleet(broker, "--json", "ls"))
    assert sorted(d["id"] for d in listed) == [f"sim-{n:04d}" for n in range(1, DEVICES + 1)]
    assert all(d["state"] == "online" and d["version"] == __version__ for d in listed)
    assert sorted(d["group"] for d in listed) == ["hall"] * (DEVICES // 2) + ["kitchen"] * (DEVICES // 2)

    pings = json_lines(fleet(broker, "--json", "--timeout", "20", "cmd", "all", "ping"))
    assert len({p["device"] for p in pings}) == DEVICES and all(p["ok"] and p["result"]["pong"] for p in pings)

    applied = json_lines(fleet(broker, "--json", "--timeout", "20", "set", "all", "audio.volume=35"))
    assert len({r["device"] for r in applied}) == DEVICES
    assert all(r["ok"] and r["result"]["applied"] == ["audio.volume"] for r in applied)
    seen = json_lines(fleet(broker, "get", "all"))
    assert len(seen) == DEVICES and all(s["in_sync"] and s["config"]["audio"]["volume"] == 35 for s in seen)

    # A desired-state change for one group: its devices take it (the live agent changes too), the others not.
    changed = json_lines(fleet(broker, "--json", "--timeout", "20", "set", "group:hall", "agent.name=chat"))
    assert len(changed) == DEVICES // 2 and all(r["ok"] and "agent.name" in r["result"]["applied"] for r in changed)
    agents = {s["device"]: s["config"]["agent"]["name"] for s in json_lines(fleet(broker, "get", "all"))}
    hall = {r["id"] for r in listed if r["group"] == "hall"}
    assert all(agents[d] == ("chat" if d in hall else "assistant") for d in agents)

    report = json.loads(simulator.stop())
    assert report["devices"] == report["connected"] == DEVICES
    assert report["commands_answered"] == DEVICES  # the pings; desired state is not a command
    offline = json_lines(fleet(broker, "--json", "ls"))
    assert all(d["state"] == "offline" for d in offline)  # a clean stop says so itself


def test_fleet_top_once_shows_the_devices_filtered_and_sorted(broker: Broker, simulator: Running) -> None:
    assert len(json_lines(fleet(broker, "--json", "--timeout", "20", "cmd", "all", "listen"))) == DEVICES
    rows = wait_until(lambda: turns_reported(broker), "every device's telemetry shows its turn")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # by id unless asked otherwise
    assert all(r["llm"] == "local/smollm2-135m" and r["version"] == __version__ and r["cpu"] is not None for r in rows)

    kitchen = top_rows(broker, "group:kitchen")
    assert len(kitchen) == DEVICES // 2 and {r["group"] for r in kitchen} == {"kitchen"}
    by_latency = top_rows(broker, "--sort=-p95", "group:hall")
    assert [r["p95"] for r in by_latency] == sorted((r["p95"] for r in by_latency), reverse=True)
    assert [r["id"] for r in top_rows(broker, "0012")] == ["sim-0012"]
    assert top_rows(broker, "state:speaking", "group:kitchen") == [
        r for r in kitchen if r["state"] == "speaking"
    ]  # nobody talks now: an empty result, exit 0

    table = fleet(broker, "top", "group:kitchen")  # not a terminal: the table once
    assert table.returncode == 0 and "sim-0001" in table.stdout and "sim-0002" not in table.stdout
    bad = fleet(broker, "top", "colour:red")
    assert bad.returncode == 2 and "unknown filter 'colour'" in bad.stderr


def test_the_exporter_serves_what_the_devices_publish(
    broker: Broker, simulator: Running, start_exporter: Callable[[str], tuple[Running, str]]
) -> None:
    _, url = start_exporter("exporter")
    assert len(json_lines(fleet(broker, "--json", "--timeout", "20", "cmd", "all", "listen"))) == DEVICES
    refused = fleet(broker, "--json", "--timeout", "20", "set", "all", "agent.name=nonexistent")
    assert refused.returncode == 1  # every device refuses it, with an error event each
    rows = {r["id"]: r for r in wait_until(lambda: turns_reported(broker), "every device's turn in telemetry")}

    def settled() -> Any:
        samples = scrape(url)
        gauges = [k for k in samples if k[0] == "appliance_device_voice_to_voice_seconds"]
        counted = [total(samples, "appliance_turns_total"), total(samples, "appliance_errors_total")]
        done = counted == [DEVICES, DEVICES] and len(gauges) == 2 * DEVICES
        return samples if done else None

    samples = wait_until(settled, "the exporter counted every turn and error")
    for group in ("kitchen", "hall"):
        assert total(samples, "appliance_devices_online", group=group, version=__version__) == DEVICES // 2
    assert total(samples, "appliance_errors_total", source="desired config") == DEVICES
    for device, row in rows.items():  # each device had one turn: its p50 and p95 are that turn's latency
        for quantile in ("0.5", "0.95"):
            gauge = total(samples, "appliance_device_voice_to_voice_seconds", device=device, quantile=quantile)
            assert gauge == pytest.approx(row["p95"] / 1000)
        assert total(samples, "appliance_device_rss_bytes", device=device) > 10 * 1024 * 1024
    assert total(samples, "appliance_voice_to_voice_seconds_count") == DEVICES
    assert total(samples, "appliance_voice_to_voice_seconds_sum") == pytest.approx(
        sum(r["p95"] for r in rows.values()) / 1000
    )
    under_one_second = sum(1 for r in rows.values() if r["p95"] <= 1000)
    assert total(samples, "appliance_voice_to_voice_seconds_bucket", le="1.0") == under_one_second

    simulator.stop()  # every device says offline: none is counted online any more
    wait_until(lambda: total(scrape(url), "appliance_devices_online") == 0, "every device offline")
    assert total(scrape(url), "appliance_devices") == DEVICES


def test_two_exporters_split_telemetry_and_events_between_them(
    broker: Broker, simulator: Running, start_exporter: Callable[[str], tuple[Running, str]]
) -> None:
    _, first = start_exporter("first")
    _, second = start_exporter("second")
    assert len(json_lines(fleet(broker, "--json", "--timeout", "20", "cmd", "all", "listen"))) == DEVICES

    def both() -> Any:
        got = [scrape(first), scrape(second)]
        return got if sum(total(s, "appliance_turns_total") for s in got) == DEVICES else None

    wait_until(both, "the two exporters together counted every turn")
    time.sleep(1)
    split = both()  # still every turn once: no exporter got one the other did
    assert split is not None
    turns = [total(s, "appliance_turns_total") for s in split]
    assert all(t > 0 for t in turns), turns  # each took a share of the turn events...
    live = [total(s, "appliance_exporter_messages_total", kind="telemetry") for s in split]
    assert all(n > 0 for n in live), live  # ...and of the telemetry
    for samples in split:  # status is every exporter's: both see the whole fleet online
        assert total(samples, "appliance_devices_online") == DEVICES


@pytest.fixture
def acl_broker() -> Iterator[Broker]:
    """The shipped mosquitto/ setup: an operator account, and one account per simulated device (add-device.sh)."""
    from tests.integration.test_mosquitto_acl import OPERATOR, OPERATOR_PASSWORD, AclBroker, script

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    root = Path(tempfile.mkdtemp(prefix="mq-acl-"))
    root.chmod(0o755)  # Mosquitto, started as root, drops to its own user
    (root / "run").mkdir()
    if os.geteuid() == 0:
        shutil.chown(root / "run", user="mosquitto")
    accounts = [("add-operator.sh", OPERATOR, OPERATOR_PASSWORD)]
    accounts += [("add-device.sh", f"sim-{n:04d}", f"pw-sim-{n:04d}", "--group", "acl") for n in range(1, 5)]
    for name, account, password, *options in accounts:
        done = script(name, *options, "--password", password, account, files=root / "etc")
        assert done.returncode == 0, done.stderr
    broker = AclBroker(root, port).start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_simulated_devices_log_in_with_an_account_each_under_the_shipped_acl(
    acl_broker: Broker, models_dir: Path, tmp_path: Path
) -> None:
    """Under the ACL a device may publish only its own topics: each answers only if it logged in as
    itself. The exporter, as an operator, reads through its shared subscription under the same ACL."""
    from tests.integration.test_mosquitto_acl import OPERATOR, OPERATOR_PASSWORD

    count, broker = 4, acl_broker
    operator = {"APPLIANCE_MQTT__USERNAME": OPERATOR, "APPLIANCE_MQTT__PASSWORD": OPERATOR_PASSWORD}
    sim = Running(
        broker,
        tmp_path,
        "simulate",
        "simulate",
        "--devices",
        str(count),
        "--group",
        "acl",
        "--username",
        "{id}",
        "--password",
        "pw-{id}",
        "--jitter",
        "0.5",
        "--telemetry-interval",
        "1",
        env={"APPLIANCE_MODELS__DIR": str(models_dir)},
    )
    exporter = Running(broker, tmp_path, "exporter", "exporter", "--port", "0", "--bind", "127.0.0.1", env=operator)
    try:
        sim.wait_for(f"{count}/{count} connected")
        url = "http://127.0.0.1:{}/metrics".format(exporter.wait_for(r"127\.0\.0\.1:(\d+)/metrics").group(1))
        exporter.wait_for("mqtt connected")
        listen = subprocess.run(
            [
                sys.executable,
                "-m",
                "appliance",
                "fleet",
                "--broker",
                f"127.0.0.1:{broker.port}",
                "--json",
                "--timeout",
                "20",
                "cmd",
                "all",
                "listen",
            ],
            env={**os.environ, **operator},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert {r["device"] for r in json_lines(listen)} == {f"sim-{n:04d}" for n in range(1, count + 1)}
        wait_until(lambda: total(scrape(url), "appliance_turns_total") == count, "the exporter saw every turn")
        assert total(scrape(url), "appliance_devices_online", group="acl") == count
    finally:
        sim.kill()
        exporter.kill()


def test_a_simulation_that_cannot_start_says_why_in_one_line(broker: Broker, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{broker.port}", "simulate"]
    command += ["--devices", "3", "--password", "file:/nonexistent/{id}", "--duration", "5"]
    scratch = {**os.environ, "TMPDIR": str(tmp_path)}  # where its temporary state folder would be left
    unreadable = subprocess.run(command, capture_output=True, text=True, timeout=60, env=scratch)
    assert unreadable.returncode == 2 and unreadable.stderr.strip().splitlines() == [
        "appliance: error: cannot read secret file /nonexistent/sim-0001: No such file or directory"
    ]
    assert not list(tmp_path.iterdir())  # nothing left behind
    assert fleet(broker, "simulate", "--devices", "0").returncode == 2
    assert fleet(broker, "top", "--sort", "colour").returncode == 2
