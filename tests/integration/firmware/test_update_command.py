"""The MQTT `update` command running the real install path under a temporary root.

On a device the sandboxed appliance runs request-update.sh, and appliance-update.path starts the root
unit that runs install-release.sh on the request; here a small task plays that path unit. The direct
path (the appliance allowed to run install-release.sh itself) is tested with an update that rolls back.
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
from tests.integration.broker import Broker
from tests.integration.firmware.rig import SCRIPTS, DeviceRig


@pytest.fixture
def device(
    tmp_path: Path,
    release_wheels: dict[str, Path],
    default_models: Path,
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> DeviceRig:
    rig = DeviceRig(tmp_path, release_wheels, default_models, broker_port=broker.port)
    assert rig.provision().code == 0
    first = rig.install("1.0.0")
    assert first.code == 0, first.stderr
    for name, value in rig.env().items():  # the installer inherits the appliance's environment
        monkeypatch.setenv(name, value)
    return rig


async def update(command: UpdateCommand, version: str, wheel: Path) -> dict[str, Any]:
    router = CommandRouter({"update": command.entry()})
    payload = json.dumps({"id": f"up-{version}", "version": version, "wheel": str(wheel)}).encode()
    return await router.handle("update", payload)


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
    command = UpdateCommand(AppConfig(), [str(requester), "--root", str(device.root), "--timeout", "200"])
    path_unit = asyncio.create_task(play_path_unit(device))

    reply = await update(command, "1.1.0", device.wheels["1.1.0"])

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


async def test_update_that_fails_its_health_check_replies_rolled_back(
    device: DeviceRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAND_IN_BROKEN", "1.1.0")  # installs and passes doctor, but does not come up
    installer = [str(SCRIPTS / "install-release.sh"), "--root", str(device.root), *device.install_options()]
    command = UpdateCommand(AppConfig(), installer)

    reply = await update(command, "1.1.0", device.wheels["1.1.0"])

    assert reply["ok"] is False and reply["error"]["code"] == "rolled_back"
    assert reply["error"]["message"].startswith("step health failed: the new release did not come up healthy")
    assert reply["error"]["message"].endswith("back on 1.0.0")
    assert device.link("current") == "releases/1.0.0"
