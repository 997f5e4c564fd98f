"""The `update` command against installer stand-ins: outcome replies, one update at a time, a free loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.config import AppConfig
from appliance.fleet.commands import CommandRouter
from appliance.fleet.update_command import UpdateCommand

WHEEL = "/srv/wheels/appliance-1.1.0-py3-none-any.whl"


def installer(tmp_path: Path, body: str) -> Path:
    """A stand-in for install-release.sh: parses --result-file like it, then runs `body`."""
    script = tmp_path / "installer.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        'args="$*"; while (($#)); do case $1 in --result-file) result=$2; shift ;; esac; shift; done\n'
        f'echo "$args" >>"{tmp_path}/calls"\n' + body
    )
    script.chmod(0o755)
    return script


def outcome(**fields: Any) -> str:
    return f"echo '{json.dumps(fields)}' >\"$result\"\n"


async def send(router: CommandRouter, command_id: str, **args: Any) -> dict[str, Any]:
    return await router.handle("update", json.dumps({"id": command_id, **args}).encode())


def router_for(script: Path) -> CommandRouter:
    return CommandRouter({"update": UpdateCommand(AppConfig(), [str(script)]).entry()})


async def test_an_installed_release_is_the_reply(tmp_path: Path) -> None:
    script = installer(tmp_path, "echo step venv\n" + outcome(outcome="installed", version="1.1.0", running="1.1.0",
                                                               message="1.1.0 installed (was 1.0.0)"))  # fmt: skip
    reply = await send(router_for(script), "u1", version="1.1.0", wheel=WHEEL)
    assert reply == {"id": "u1", "ok": True, "result": {"outcome": "installed", "version": "1.1.0", "running": "1.1.0",
                                                        "message": "1.1.0 installed (was 1.0.0)"}}  # fmt: skip
    call = (tmp_path / "calls").read_text()
    assert call.startswith(f"--version 1.1.0 --wheel {WHEEL} --result-file /")


async def test_a_rollback_is_an_error_naming_the_failed_step(tmp_path: Path) -> None:
    message = "step health failed: the new release did not come up healthy; back on 1.0.0"
    body = outcome(outcome="rolled_back", version="1.1.0", running="1.0.0", failed_step="health", message=message)
    reply = await send(router_for(installer(tmp_path, body + "exit 1\n")), "u2", version="1.1.0", wheel=WHEEL)
    assert reply == {"id": "u2", "ok": False, "error": {"code": "rolled_back", "message": message}}


async def test_an_installer_that_dies_without_an_outcome_is_reported(tmp_path: Path) -> None:
    script = installer(tmp_path, "echo 'pip: no space left on device' >&2\nexit 3\n")
    reply = await send(router_for(script), "u3", version="1.1.0", wheel=WHEEL)
    assert reply["error"] == {
        "code": "update_failed",
        "message": "the installer exited with status 3 and no outcome: pip: no space left on device",
    }


async def test_a_second_update_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    release = tmp_path / "release"
    body = f'while [ ! -e "{release}" ]; do sleep 0.02; done\n' + outcome(outcome="installed", version="1.1.0")
    router = router_for(installer(tmp_path, body))
    first = asyncio.create_task(send(router, "a", version="1.1.0", wheel=WHEEL))
    await asyncio.sleep(0.2)
    second = await send(router, "b", version="1.2.0", wheel=WHEEL)
    assert second["error"] == {"code": "busy", "message": "an update to 1.1.0 is already running"}
    release.touch()
    assert (await asyncio.wait_for(first, 10))["ok"] is True
    third = await send(router, "c", version="1.2.0", wheel=WHEEL)  # free again afterwards
    assert third["ok"] is True


async def test_the_event_loop_keeps_running_during_an_install(tmp_path: Path) -> None:
    router = router_for(installer(tmp_path, "sleep 0.6\n" + outcome(outcome="installed", version="1.1.0")))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(ticker())
    reply = await send(router, "t", version="1.1.0", wheel=WHEEL)
    task.cancel()
    assert reply["ok"] is True
    assert len(ticks) >= 8 and max(b - a for a, b in itertools.pairwise(ticks)) < 0.3


async def test_a_device_without_an_installer_says_so(tmp_path: Path) -> None:
    reply = await send(router_for(tmp_path / "missing.sh"), "n", version="1.1.0", wheel=WHEEL)
    assert reply["error"]["code"] == "not_available"
    assert str(tmp_path / "missing.sh") in reply["error"]["message"]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ({"version": "../../etc", "wheel": WHEEL}, "version"),
        ({"version": "1.1.0", "wheel": "appliance-1.1.0.whl"}, "wheel"),
        ({"version": "1.1.0", "wheel": "https://example.com/appliance-1.1.0.tar.gz"}, "wheel"),
        ({"version": "1.1.0"}, "wheel"),
    ],
)
async def test_bad_arguments_never_reach_the_installer(tmp_path: Path, args: dict[str, Any], where: str) -> None:
    reply = await send(router_for(installer(tmp_path, "")), "x", **args)
    assert reply["error"]["code"] == "bad_request" and reply["error"]["message"].startswith(where)
    assert not (tmp_path / "calls").exists()


async def test_urls_with_a_query_are_accepted(tmp_path: Path) -> None:
    script = installer(tmp_path, outcome(outcome="installed", version="1.1.0"))
    url = "https://releases.example.com/appliance-1.1.0-py3-none-any.whl?token=abc"
    assert (await send(router_for(script), "q", version="1.1.0", wheel=url))["ok"] is True
