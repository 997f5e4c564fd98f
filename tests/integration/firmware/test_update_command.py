"""The MQTT `update` command running the real install path under a temporary root, and refusing what
it must not install on a real device over a real Mosquitto.

On a device the sandboxed appliance fetches and verifies the signed release into its state directory
and runs request-update.sh, and appliance-update.path starts the root unit that runs install-release.sh
on the request (which verifies again); here a small task plays that path unit. The direct path (the
appliance allowed to run install-release.sh itself) is tested with an update that rolls back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from appliance.config import AppConfig
from appliance.fleet.commands import CommandRouter
from appliance.fleet.update_command import UpdateCommand
from appliance.release.verify import file_sha256
from tests.integration.broker import Broker, rr
from tests.integration.firmware.releases import build_and_sign, keygen, tampered
from tests.integration.firmware.rig import SCRIPTS, DeviceRig, ReleaseKit
from tests.integration.firmware.wheel import build_wheel
from tests.integration.test_fleet import DEVICE, HeadlessDevice


@pytest.fixture
def device(
    tmp_path: Path,
    release_kit: ReleaseKit,
    default_models: Path,
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> DeviceRig:
    rig = DeviceRig(tmp_path, release_kit, default_models, broker_port=broker.port)
    assert rig.provision().code == 0
    first = rig.install("1.0.0")
    assert first.code == 0, first.stderr
    for name, value in rig.env().items():  # the installer inherits the appliance's environment
        monkeypatch.setenv(name, value)
    return rig


def device_config(rig: DeviceRig) -> AppConfig:
    """The device's config as the appliance reads it: its state directory under the root, the kit's key."""
    state = rig.root / "var/lib/appliance"
    return AppConfig.model_validate(
        {"state": {"dir": str(state)}, "update": {"trusted_keys": [f"file:{rig.kit.public_key}"]}}
    )


async def update(command: UpdateCommand, version: str, release: Path) -> dict[str, Any]:
    router = CommandRouter({"update": command.entry()})
    payload = {"id": f"up-{version}", "release": str(release), "sha256": file_sha256(release)}
    return await router.handle("update", json.dumps(payload).encode())


async def play_path_unit(rig: DeviceRig) -> subprocess.CompletedProcess[str]:
    """appliance-update.path + appliance-update.service: wait for a request, install it as root would."""
    request = rig.root / "var/lib/appliance/update/request"
    while not request.exists():
        await asyncio.sleep(0.05)
    argv = [str(SCRIPTS / "install-release.sh"), "--root", str(rig.root), "--request", str(request)]
    return await asyncio.to_thread(
        subprocess.run, [*argv, *rig.install_options()], capture_output=True, text=True, timeout=240
    )


async def test_update_over_the_device_path_installs_and_replies(device: DeviceRig) -> None:
    requester = SCRIPTS / "request-update.sh"
    command = UpdateCommand(device_config(device), [str(requester), "--root", str(device.root), "--timeout", "200"])
    path_unit = asyncio.create_task(play_path_unit(device))

    reply = await update(command, "1.1.0", device.kit.releases["1.1.0"])

    installed = await path_unit
    assert installed.returncode == 0, installed.stderr
    assert reply == {
        "id": "up-1.1.0",
        "ok": True,
        "result": {"outcome": "installed", "version": "1.1.0", "running": "1.1.0",
                   "message": "1.1.0 installed (was 1.0.0)"},
    }  # fmt: skip
    assert device.link("current") == "releases/1.1.0"
    result = json.loads((device.root / "var/lib/appliance/update/result.json").read_text())
    assert result["outcome"] == "installed" and result["request"]  # the outcome stays for later
    assert not (device.root / "var/lib/appliance/update/request").exists()
    assert list((device.root / "var/lib/appliance/update/incoming").iterdir()) == []


async def test_update_that_fails_its_health_check_replies_rolled_back(
    device: DeviceRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAND_IN_BROKEN", "1.1.0")  # installs and passes doctor, but does not come up
    installer = [str(SCRIPTS / "install-release.sh"), "--root", str(device.root), *device.install_options()]
    command = UpdateCommand(device_config(device), installer)

    reply = await update(command, "1.1.0", device.kit.releases["1.1.0"])

    assert reply["ok"] is False and reply["error"]["code"] == "rolled_back"
    assert reply["error"]["message"].startswith("step health failed: the new release did not come up healthy")
    assert reply["error"]["message"].endswith("back on 1.0.0")
    assert device.link("current") == "releases/1.0.0"


def test_a_device_on_mosquitto_refuses_unsigned_foreign_and_tampered_releases(
    tmp_path: Path, release_kit: ReleaseKit, broker: Broker, models_dir: Path
) -> None:
    calls = tmp_path / "installer-calls"
    stand_in = tmp_path / "installer.sh"
    stand_in.write_text(
        f'#!/usr/bin/env bash\necho "$*" >>"{calls}"\n'
        "while (($#)); do case $1 in --result-file) result=$2; shift ;; esac; shift; done\n"
        """echo '{"outcome": "installed", "version": "1.1.0", "running": "1.1.0", "message": "ok"}' >"$result"\n"""
    )
    stand_in.chmod(0o755)
    public = release_kit.public_key.read_text().strip()
    env = {"APPLIANCE_UPDATE__TRUSTED_KEYS": f'["{public}"]', "APPLIANCE_UPDATE__INSTALLER": str(stand_in)}
    stranger = tmp_path / "stranger.key"
    keygen(stranger)
    foreign = build_and_sign(build_wheel("1.1.0", tmp_path / "wheels"), tmp_path / "foreign", stranger)
    changed = tampered(release_kit.releases["1.1.0"], tmp_path / "tampered.tar")
    device = HeadlessDevice(broker, models_dir, tmp_path, env)
    topic = f"appliance/{DEVICE}/cmd/update"

    def send(command_id: str, release: Path, sha256: str | None = None) -> dict[str, Any]:
        payload = {"id": command_id, "release": str(release), "sha256": sha256 or file_sha256(release)}
        return rr(broker, topic, json.dumps(payload))

    try:
        device.wait_for("mqtt: connected")
        unsigned = rr(broker, topic, json.dumps({"id": "w", "version": "1.1.0", "wheel": "/srv/a-1.1.0.whl"}))
        assert unsigned["error"]["code"] == "bad_request" and "unsigned wheel" in unsigned["error"]["message"]
        assert send("f", foreign)["error"]["code"] == "untrusted_release"
        assert send("t", changed)["error"]["code"] == "hash_mismatch"
        assert send("h", release_kit.releases["1.1.0"], "1" * 64)["error"]["code"] == "hash_mismatch"
        assert not calls.exists()  # nothing refused ever reached the installer

        good = send("g", release_kit.releases["1.1.0"])
        assert good["ok"] is True and good["result"]["version"] == "1.1.0"
        assert calls.read_text().startswith(f"--release {tmp_path / 'state' / 'update' / 'incoming'}/")
    finally:
        device.close()
