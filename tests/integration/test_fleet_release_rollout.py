"""Staged rollouts of a signed release on a real Mosquitto, over simulated devices that run the real device
code: each device's real `update` command checks the release against the key its config trusts, the
simulator's stand-in installer "installs" it and the device restarts reporting the new version. The
releases are built and signed with the project's own release tooling; what is asserted is what operators
see: `fleet ls` and the retained rollout document."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from packaging.version import Version

from appliance import __version__
from appliance.release.artifact import sign_artifact
from appliance.release.build import BuildOptions, build_release
from appliance.release.keys import generate_key_pair, load_private_key
from appliance.release.verify import file_sha256
from tests.integration.broker import Broker, mosquitto
from tests.integration.firmware.wheel import build_wheel
from tests.integration.test_fleet_rollout import report_errors_from_the_canary
from tests.integration.test_fleet_scale import Running

DEVICES = 10
OLD = __version__
"""What the simulated devices run until they install something."""
NEW = f"{Version(__version__).major + 1}.0.0"
FAST = ("--pause", "0.2", "--settle", "0.5", "--deadline", "60")


@dataclass(frozen=True)
class Releases:
    new: Path
    old: Path
    """The release the devices run now, to roll back with."""
    untrusted: Path
    """The new version, signed by a key no device trusts."""
    device_config: Path
    """The devices' config: `[update] trusted_keys` names the key that signed `new` and `old`."""


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    base = tmp_path_factory.mktemp("releases")
    public = generate_key_pair(base / "release.key")
    trusted = load_private_key(base / "release.key")

    def signed(version: str, folder: str, key: Ed25519PrivateKey) -> Path:
        wheel = build_wheel(version, base / folder / "wheel")
        release = build_release(BuildOptions(out=base / folder, wheel=wheel, with_dependencies=False))
        sign_artifact(release, key)
        return release

    config = base / "device.toml"
    config.write_text(f'[update]\ntrusted_keys = ["file:{public}"]\n')
    return Releases(
        new=signed(NEW, "new", trusted),
        old=signed(OLD, "old", trusted),
        untrusted=signed(NEW, "untrusted", Ed25519PrivateKey.generate()),
        device_config=config,
    )


@pytest.fixture
def broker() -> Iterator[Broker]:
    with mosquitto() as broker:
        yield broker


@pytest.fixture
def simulator(broker: Broker, models_dir: Path, releases: Releases, tmp_path: Path) -> Iterator[Running]:
    sim = Running(broker, tmp_path, "simulate", "simulate", "--config", str(releases.device_config), "--devices",
                  str(DEVICES), "--jitter", "1", "--report-every", "0.5", "--state-dir", str(tmp_path / "devices"),
                  env={"APPLIANCE_MODELS__DIR": str(models_dir)})  # fmt: skip
    try:
        sim.wait_for(f"{DEVICES}/{DEVICES} connected")
        yield sim
    finally:
        sim.kill()


def fleet(broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{broker.port}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def release_options(release: Path) -> tuple[str, ...]:
    return ("--release", str(release), "--sha256", file_sha256(release))


def versions(broker: Broker) -> dict[str, str]:
    """What `fleet ls` shows each device running."""
    listed = fleet(broker, "--json", "ls")
    assert listed.returncode == 0, listed.stderr
    return {row["id"]: row["version"] for row in map(json.loads, listed.stdout.splitlines())}


def rollout_document(broker: Broker, name: str) -> dict[str, Any]:
    status = fleet(broker, "rollout", "status", name, "--json")
    assert status.returncode == 0, status.stderr
    document: dict[str, Any] = json.loads(status.stdout)
    return document


def test_a_release_goes_canary_first_then_in_batches_until_every_device_runs_it(
    broker: Broker, simulator: Running, releases: Releases
) -> None:
    assert set(versions(broker).values()) == {OLD}
    done = fleet(broker, "--timeout", "5", "rollout", "start", "all", *release_options(releases.new),
                 "--name", "upgrade", "--canary", "10%", "--batch", "50%", *FAST, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["kind"] == "release" and document["release"]["version"] == NEW  # read from its signed manifest
    assert document["state"] == "done" and [len(b) for b in document["batches"]] == [1, 5, 4]
    assert {r["result"] for r in document["devices"].values()} == {"ok"} and len(document["devices"]) == DEVICES
    assert all(r["before"] == {"version": OLD} for r in document["devices"].values())
    listed = versions(broker)
    assert len(listed) == DEVICES and set(listed.values()) == {NEW}
    stages = [line.split(":")[1].strip() for line in done.stderr.splitlines() if "devices healthy" in line]
    assert stages == ["canary", "batch 1/2", "batch 2/2"], done.stderr
    status = fleet(broker, "rollout", "status", "upgrade")  # retained: any operator reads it later
    assert status.returncode == 0 and f"of release {NEW}" in status.stdout and ": done," in status.stdout


def test_a_release_signed_by_an_untrusted_key_fails_the_canary_and_touches_nothing_after_it(
    broker: Broker, simulator: Running, releases: Releases
) -> None:
    done = fleet(broker, "--timeout", "5", "rollout", "start", "all", *release_options(releases.untrusted),
                 "--name", "rogue", "--canary", "20%", *FAST, "--json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    canary = document["batches"][0]
    assert document["state"] == "halted" and len(canary) == 2
    assert set(document["devices"]) == set(canary)  # the later batches were never touched
    for device in canary:
        record = document["devices"][device]
        assert record["result"] == "unchanged" and record["reason"].startswith("untrusted_release:"), record
    assert set(versions(broker).values()) == {OLD}
    assert rollout_document(broker, "rogue")["state"] == "halted"


def halt_on_an_error_event_from_the_canary(broker: Broker, tmp_path: Path, name: str, *args: str) -> dict[str, Any]:
    """A release rollout whose canary installs the release and then reports an error while the batch
    settles (injected here, as a box whose new release breaks a provider would): the rollout halts.
    Returns its retained document."""
    running = Running(broker, tmp_path, "operator", "--timeout", "5", "rollout", "start", "all", *args, "--name", name,
                      "--canary", "10%", "--settle", "3", "--deadline", "60", env={})  # fmt: skip

    report_errors_from_the_canary(broker, name, running)
    assert running.proc.wait(60) == 1, running.err.read_text()
    document = rollout_document(broker, name)
    assert document["state"] == "halted", document
    assert set(document["devices"]) == set(document["batches"][0])  # no batch after the canary was touched
    return document


def test_a_halted_release_rollout_rolls_the_canary_back_to_the_previous_release(
    broker: Broker, simulator: Running, releases: Releases, tmp_path: Path
) -> None:
    document = halt_on_an_error_event_from_the_canary(
        broker, tmp_path, "broken", *release_options(releases.new),
        "--rollback-release", str(releases.old), "--rollback-sha256", file_sha256(releases.old),
    )  # fmt: skip
    ((canary, record),) = document["devices"].items()
    assert record["result"] == "rolled_back" and "error event: tts: voice file missing" in record["reason"], record
    assert document["rollback_release"]["version"] == OLD
    assert set(versions(broker).values()) == {OLD}
    # The canary did run the new release in between: the stand-in installer recorded both installs.
    installed = json.loads((tmp_path / "devices" / canary / "release.json").read_text())
    assert (installed["previous"], installed["version"]) == (NEW, OLD)


def test_without_the_previous_release_a_halted_rollout_says_the_canary_waits_for_a_rollback(
    broker: Broker, simulator: Running, releases: Releases, tmp_path: Path
) -> None:
    document = halt_on_an_error_event_from_the_canary(broker, tmp_path, "stuck", *release_options(releases.new))
    ((canary, record),) = document["devices"].items()
    assert record["result"] == "rollback_pending"
    assert "cannot be rolled back without the previous one" in record["rollback"]
    assert versions(broker)[canary] == NEW  # nothing to go back with: it keeps the new release
    status = fleet(broker, "rollout", "status", "stuck")
    assert f"{canary}: rollback_pending:" in status.stdout and "--rollback-release" in status.stdout


def test_bad_release_rollout_options_are_one_line_and_exit_2(broker: Broker, releases: Releases) -> None:
    sha = file_sha256(releases.new)
    for args, said in (
        (("all", "audio.volume=1", "--release", str(releases.new), "--sha256", sha), "not both"),
        (("all",), "nothing to roll out"),
        (("all", "--release", str(releases.new)), "needs the release's sha256"),
        (("all", "--release", "https://releases.example/a.tar", "--sha256", sha), "give the version it installs"),
        (("all", "--release", "relative.tar", "--sha256", sha), "an http(s) URL or an absolute path"),
        (("all", "audio.volume=1", "--rollback-release", str(releases.old)), "--rollback-release goes with --release"),
    ):
        done = fleet(broker, "rollout", "start", *args)
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
