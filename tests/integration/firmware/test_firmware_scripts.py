"""The firmware scripts under a temporary root: provision, install, update, roll back, health check.

Real scripts, real release venvs built from real wheels, the real model files (hard links), the real
`appliance doctor` and `appliance fleet ls` of each release, and a real Mosquitto; systemd is the stand-in
in tests/integration/firmware/systemctl, which starts the current release's own `appliance` binary.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess

import pytest

from tests.integration.broker import Broker
from tests.integration.firmware.releases import build_and_sign, keygen, tampered
from tests.integration.firmware.rig import DEVICE, SCRIPTS, STAND_IN, DeviceRig
from tests.integration.firmware.systemd_verify import verify
from tests.integration.firmware.wheel import build_wheel

UNITS = ["appliance.service", "appliance-update.service", "appliance-update.path", "appliance-commit.service"]


def retained_status(broker: Broker) -> dict[str, object]:
    done = subprocess.run(
        ["mosquitto_sub", "-p", str(broker.port), "-t", f"appliance/{DEVICE}/status", "-C", "1", "-W", "3"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return dict(json.loads(done.stdout))


def test_provision_lays_out_the_device(rig: DeviceRig) -> None:
    root = rig.root
    for unit in UNITS:
        assert (root / "etc/systemd/system" / unit).read_text() == (SCRIPTS.parent / "systemd" / unit).read_text()
    for script in ("install-release.sh", "rollback.sh", "health-check.sh", "request-update.sh", "boot-check.sh",
                   "commit-release.sh"):  # fmt: skip
        assert os.access(rig.app_dir / "scripts" / script, os.X_OK)
    assert (root / "etc/appliance/appliance.toml").read_text() == rig.config_text()
    assert (root / "etc/appliance/appliance.env").stat().st_mode & 0o777 == 0o600
    assert (root / "var/lib/appliance/update").is_dir() and (root / "var/cache/appliance").is_dir()
    assert "defaults.pcm.card 1" in (root / "etc/asound.conf").read_text()  # the USB card, not HDMI
    assert rig.calls() == ["daemon-reload", "enable appliance.service appliance-update.path appliance-commit.service"]
    # Again: nothing breaks, nothing is lost.
    (root / "etc/asound.conf").write_text("pcm.!default { type hw card 2 }\n")
    assert rig.provision().code == 0
    assert (root / "etc/asound.conf").read_text() == "pcm.!default { type hw card 2 }\n"


def test_install_then_update_waits_for_ready_and_mqtt_online(mqtt_rig: DeviceRig, broker: Broker) -> None:
    rig = mqtt_rig
    first = rig.install("1.0.0")
    assert first.code == 0, first.stderr
    assert first.result is not None and first.result["outcome"] == "installed" and first.result["running"] == "1.0.0"
    assert rig.link("current") == "releases/1.0.0" and rig.link("previous") is None
    assert "health-check: fw-1 is online with 1.0.0" in first.stderr
    files = rig.app_dir / "releases/1.0.0/release"
    assert json.loads((files / "manifest.json").read_text())["version"] == "1.0.0"  # what was installed, as signed
    assert (files / "requirements.lock").read_text().startswith("appliance==1.0.0 --hash=sha256:")
    assert not (rig.app_dir / ".staging").exists()
    assert rig.trial() is None  # healthy, self-tested, committed

    second = rig.install("1.1.0")
    assert second.code == 0, second.stderr
    assert second.result is not None
    assert second.result["outcome"] == "installed" and second.result["message"] == "1.1.0 installed (was 1.0.0)"
    assert rig.link("current") == "releases/1.1.0" and rig.link("previous") == "releases/1.0.0"
    assert retained_status(broker) == {"state": "online", "version": "1.1.0"}
    old_model = rig.app_dir / "releases/1.0.0/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
    new_model = rig.app_dir / "releases/1.1.0/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert old_model.stat().st_ino == new_model.stat().st_ino  # seeded from the running release, no copy
    assert rig.restarts() == 2

    again = rig.install("1.1.0")
    assert again.code == 0 and again.result is not None and again.result["outcome"] == "current"
    assert rig.restarts() == 2

    # The units provision.sh installed run what install-release.sh installed: systemd finds every binary.
    verdict = verify(rig.root, UNITS)
    assert verdict.code == 0 and verdict.output == "", verdict.output


def test_update_whose_health_check_fails_rolls_back(mqtt_rig: DeviceRig, broker: Broker) -> None:
    rig = mqtt_rig
    assert rig.install("1.0.0").code == 0
    rig.broken.append("1.1.0")  # installs and passes doctor, but the service does not come up

    run = rig.install("1.1.0")

    assert run.code == 1
    assert run.result is not None
    assert run.result["outcome"] == "rolled_back" and run.result["failed_step"] == "health"
    assert run.result["running"] == "1.0.0" and run.result["message"].endswith("back on 1.0.0")
    assert rig.link("current") == "releases/1.0.0" and rig.link("previous") is None
    assert not (rig.app_dir / "releases/1.1.0").exists()
    assert rig.restarts() == 3  # 1.0.0, the broken 1.1.0, 1.0.0 again
    assert retained_status(broker) == {"state": "online", "version": "1.0.0"}


def test_update_that_fails_before_the_switch_leaves_the_running_release_alone(rig: DeviceRig) -> None:
    assert rig.install("1.0.0").code == 0

    config = rig.root / "etc/appliance/appliance.toml"
    config.write_text(config.read_text().replace("[mqtt]\nenabled = false\n", "[mqtt]\nenabled = true\nport = 9\n"))
    doctor = rig.install("1.1.0", None, "--no-mqtt")
    assert doctor.code == 1 and doctor.result is not None
    assert doctor.result["failed_step"] == "doctor" and doctor.result["running"] == "1.0.0"
    assert doctor.result["message"].startswith("step doctor failed: mqtt broker: localhost:9:")

    assert rig.link("current") == "releases/1.0.0"
    assert sorted(p.name for p in (rig.app_dir / "releases").iterdir()) == ["1.0.0"]
    assert rig.restarts() == 1


def test_a_release_not_signed_by_a_trusted_key_is_refused_before_it_is_unpacked(rig: DeviceRig) -> None:
    assert rig.install("1.0.0").code == 0
    stranger = keygen(rig.base / "stranger.key")
    foreign = build_and_sign(build_wheel("1.2.0", rig.base / "wheels"), rig.base / "foreign", rig.base / "stranger.key")

    refused = rig.install("1.2.0", foreign)

    assert refused.code == 1 and refused.result is not None
    assert refused.result["outcome"] == "untrusted_release" and refused.result["failed_step"] == "verify"
    assert refused.result["message"].startswith("signed only by unknown key(s)")
    assert refused.result["running"] == "1.0.0" and stranger.exists()
    # Trusting the new key too (a rotation) lets the same release in.
    config = rig.root / "etc/appliance/appliance.toml"
    config.write_text(config.read_text().replace("trusted_keys = [", f'trusted_keys = ["file:{stranger}", '))
    assert rig.install("1.2.0", foreign).code == 0
    assert rig.link("current") == "releases/1.2.0"


def test_a_tampered_release_or_another_hash_is_refused(rig: DeviceRig) -> None:
    assert rig.install("1.0.0").code == 0
    changed = tampered(rig.kit.releases["1.1.0"], rig.base / "tampered.tar")

    tamper = rig.install("1.1.0", changed)
    assert tamper.code == 1 and tamper.result is not None and tamper.result["outcome"] == "hash_mismatch"
    assert "differs from the signed manifest" in tamper.result["message"]

    other = rig.install("1.1.0", None, "--sha256", "0" * 64)
    assert other.code == 1 and other.result is not None and other.result["outcome"] == "hash_mismatch"

    assert rig.link("current") == "releases/1.0.0" and rig.restarts() == 1
    assert sorted(p.name for p in (rig.app_dir / "releases").iterdir()) == ["1.0.0"]
    assert not (rig.app_dir / ".staging").exists()


def test_a_downgrade_needs_the_flag(rig: DeviceRig) -> None:
    assert rig.install("1.1.0").code == 0

    refused = rig.install("1.0.0")
    assert refused.code == 1 and refused.result is not None and refused.result["outcome"] == "downgrade"
    assert refused.result["message"] == "1.0.0 is older than the running 1.1.0: a downgrade must be asked for"

    allowed = rig.install("1.0.0", None, "--allow-downgrade")
    assert allowed.code == 0, allowed.stderr
    assert rig.link("current") == "releases/1.0.0" and rig.link("previous") == "releases/1.1.0"


def test_a_first_install_needs_a_verifier(rig: DeviceRig) -> None:
    options = ["--release", str(rig.kit.releases["1.0.0"]), "--result-file", str(rig.base / "result.json")]
    run = rig.script("install-release.sh", *options, *rig.install_options())
    assert run.code == 1 and run.result is not None
    assert run.result["message"] == "no release is installed to verify with: pass --verifier APPLIANCE"
    assert rig.link("current") is None


def test_an_update_cut_short_after_the_switch_goes_back_when_the_release_cannot_start(rig: DeviceRig) -> None:
    assert rig.install("1.0.0").code == 0
    assert rig.install("1.1.0", None, "--no-restart").code == 0  # switched, then the power went
    assert rig.trial() == {"version": "1.1.0", "previous": "1.0.0", "before": "", "starts": "0"}
    rig.broken.append("1.1.0")

    for start in (1, 2, 3):  # the boot, then systemd's Restart=on-failure
        rig.systemctl("start", "appliance.service")
        assert rig.trial() is not None and rig.trial()["starts"] == str(start)  # type: ignore[index]
        assert rig.link("current") == "releases/1.1.0"
    rig.systemctl("start", "appliance.service")

    assert rig.link("current") == "releases/1.0.0" and rig.trial() is None
    assert rig.state.joinpath("ActiveState").read_text().strip() == "active"  # the old release runs again
    result = rig.update_result()
    assert result["outcome"] == "rolled_back" and result["failed_step"] == "boot" and result["running"] == "1.0.0"
    assert result["message"] == "1.1.0 did not start healthy in 3 starts; back on 1.0.0"
    nothing = rig.commit()  # the boot unit finds nothing left to decide
    assert nothing.code == 0 and "no release on trial" in nothing.stderr


def test_a_release_left_on_trial_is_kept_at_boot_once_it_runs_healthy(rig: DeviceRig) -> None:
    assert rig.install("1.0.0").code == 0
    assert rig.install("1.1.0", None, "--no-restart").code == 0
    rig.systemctl("start", "appliance.service")  # the boot

    kept = rig.commit()

    assert kept.code == 0, kept.stderr
    assert rig.trial() is None and rig.link("current") == "releases/1.1.0"
    assert rig.update_result()["outcome"] == "committed"


def test_a_release_left_on_trial_that_is_not_healthy_at_boot_goes_back(rig: DeviceRig) -> None:
    assert rig.install("1.0.0").code == 0
    assert rig.install("1.1.0", None, "--no-restart").code == 0
    rig.broken.append("1.1.0")
    rig.systemctl("start", "appliance.service")  # one failed start: boot-check has not gone back yet

    back = rig.commit()

    assert back.code == 1
    assert rig.link("current") == "releases/1.0.0" and rig.trial() is None
    result = rig.update_result()
    assert result["outcome"] == "rolled_back" and result["failed_step"] == "commit"


def test_rollback_goes_back_and_forward_again(rig: DeviceRig) -> None:
    assert rig.install("1.0.0").code == 0
    assert rig.install("1.1.0").code == 0

    back = rig.rollback()
    assert back.code == 0, back.stderr
    assert rig.link("current") == "releases/1.0.0" and rig.link("previous") == "releases/1.1.0"
    assert "health-check: healthy: 1.0.0" in back.stderr

    forward = rig.rollback()
    assert forward.code == 0 and rig.link("current") == "releases/1.1.0"
    assert rig.restarts() == 4

    missing = rig.rollback("--to", "0.9.0")
    assert missing.code == 1 and "release 0.9.0 is not installed" in missing.stderr
    assert rig.link("current") == "releases/1.1.0"

    rig.broken.append("1.0.0")
    unhealthy = rig.rollback()
    assert unhealthy.code == 1 and "1.0.0 is not healthy after the rollback" in unhealthy.stderr


def test_a_second_install_is_refused_while_one_runs(rig: DeviceRig) -> None:
    lock = rig.root / "run/lock/appliance-update.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        run = rig.install("1.0.0")
    assert run.code == 1 and run.result is not None and run.result["outcome"] == "busy"
    assert rig.link("current") is None and rig.restarts() == 0


def test_bad_usage_exits_2(rig: DeviceRig) -> None:
    assert rig.script("install-release.sh", "--sha256", "0" * 64).code == 2
    bad = rig.script("install-release.sh", "--release", "x.tar", "--sha256", "xyz")
    assert bad.code == 2 and "--sha256 takes 64 lowercase hex digits" in bad.stderr
    assert rig.script("install-release.sh", "--version", "1.0.0").code == 2  # the unsigned form is gone
    assert rig.script("rollback.sh", "--bogus").code == 2
    assert rig.script("health-check.sh").code == 2  # no release yet, no --version


def test_every_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (scripts/setup --test installs it)")
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert len(scripts) == 8
    done = subprocess.run(["shellcheck", "-x", *map(str, scripts), str(STAND_IN)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_a_request_may_only_name_a_release_the_appliance_fetched_into_the_update_folder(rig: DeviceRig) -> None:
    update = rig.root / "var/lib/appliance/update"
    outside = rig.kit.releases["1.0.0"]
    (update / "incoming").mkdir()
    (update / "incoming/link.tar").symlink_to(outside)
    for release in (outside, update / "incoming/link.tar", update / "incoming/../../../../etc/x.tar"):
        (update / "request").write_text(f"id=r1\nrelease={release}\nsha256={'0' * 64}\n")
        run = rig.script("install-release.sh", "--request", str(update / "request"), *rig.install_options())
        assert run.code == 2, run.stderr
        result = json.loads((update / "result.json").read_text())
        assert result["outcome"] == "failed" and result["request"] == "r1"
        assert result["message"] == f"the requested release is not a file in {update}"
    assert rig.link("current") is None and not (rig.app_dir / ".staging").exists()
