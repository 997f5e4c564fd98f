"""The `update` command against installer stand-ins: a release is fetched into the state directory and
verified (hash, trusted signature, no downgrade) before the installer sees it; outcome replies, one
update at a time, a free loop."""

from __future__ import annotations

import asyncio
import functools
import http.server
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.config import AppConfig
from appliance.fleet.commands import CommandRouter
from appliance.fleet.update_command import UpdateCommand
from appliance.release.keys import public_text
from appliance.release.verify import file_sha256
from tests.unit.releases import make_release, rewrite

KEY, STRANGER = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def installer(tmp_path: Path, body: str) -> Path:
    """A stand-in for install-release.sh: parses --result-file like it, records its call, then runs `body`."""
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


def config(tmp_path: Path, keys: list[str] | None = None) -> AppConfig:
    trusted = [public_text(KEY.public_key())] if keys is None else keys
    return AppConfig.model_validate({"state": {"dir": str(tmp_path / "state")}, "update": {"trusted_keys": trusted}})


def router_for(script: Path, app_config: AppConfig) -> CommandRouter:
    return CommandRouter({"update": UpdateCommand(app_config, [str(script)]).entry()})


async def send(router: CommandRouter, command_id: str, release: Path | str, **args: Any) -> dict[str, Any]:
    sha = args.pop("sha256", None) or file_sha256(Path(release))
    payload = {"id": command_id, "release": str(release), "sha256": sha, **args}
    return await router.handle("update", json.dumps(payload).encode())


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("releases")
    return {
        "1.1.0": make_release(base / "a", "1.1.0", KEY),
        "1.2.0": make_release(base / "b", "1.2.0", KEY),
        "foreign": make_release(base / "c", "1.1.0", STRANGER),
        "old": make_release(base / "d", "0.0.1", KEY),
    }


INSTALLED = outcome(outcome="installed", version="1.1.0", running="1.1.0", message="1.1.0 installed (was 1.0.0)")


async def test_a_verified_release_goes_to_the_installer_from_the_state_directory(
    tmp_path: Path, releases: dict[str, Path]
) -> None:
    script = installer(tmp_path, "echo step venv\n" + INSTALLED)
    reply = await send(router_for(script, config(tmp_path)), "u1", releases["1.1.0"])
    assert reply == {"id": "u1", "ok": True, "result": {"outcome": "installed", "version": "1.1.0", "running": "1.1.0",
                                                        "message": "1.1.0 installed (was 1.0.0)"}}  # fmt: skip
    sha = file_sha256(releases["1.1.0"])
    staged = tmp_path / "state" / "update" / "incoming" / f"{sha[:16]}.release.tar"
    assert (tmp_path / "calls").read_text().startswith(f"--release {staged} --sha256 {sha} --result-file /")
    assert not staged.exists()  # the installer took its own copy; nothing piles up


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("foreign", "untrusted_release", "signed only by unknown key(s)"),
        ("tampered", "hash_mismatch", "wheels/appliance-1.1.0-py3-none-any.whl differs from the signed manifest"),
        ("other hash", "hash_mismatch", "the release's sha256 is"),
        ("old", "downgrade", "0.0.1 is older than the running"),
    ],
)
async def test_a_release_that_does_not_verify_never_reaches_the_installer(
    tmp_path: Path, releases: dict[str, Path], case: str, code: str, message: str
) -> None:
    router = router_for(installer(tmp_path, INSTALLED), config(tmp_path))
    release, sha = releases.get(case, releases["1.1.0"]), None
    if case == "tampered":
        release = rewrite(release, tmp_path / "t.tar", {"wheels/appliance-1.1.0-py3-none-any.whl": b"evil"})
    if case == "other hash":
        sha = "0" * 64
    reply = await send(router, "r", release, **({"sha256": sha} if sha else {}))
    assert reply["error"]["code"] == code and reply["error"]["message"].startswith(message), reply
    assert not (tmp_path / "calls").exists()
    assert list((tmp_path / "state" / "update" / "incoming").iterdir()) == []


async def test_a_downgrade_asked_for_goes_ahead_and_the_installer_is_told(
    tmp_path: Path, releases: dict[str, Path]
) -> None:
    router = router_for(installer(tmp_path, INSTALLED), config(tmp_path))
    assert (await send(router, "d", releases["old"], allow_downgrade=True))["ok"] is True
    assert " --allow-downgrade --result-file " in (tmp_path / "calls").read_text()


async def test_without_trusted_keys_nothing_is_installed(tmp_path: Path, releases: dict[str, Path]) -> None:
    router = router_for(installer(tmp_path, INSTALLED), config(tmp_path, keys=[]))
    reply = await send(router, "k", releases["1.1.0"])
    message = "no trusted keys are configured ([update] trusted_keys)"
    assert reply["error"] == {"code": "untrusted_release", "message": message}
    broken = router_for(installer(tmp_path, INSTALLED), config(tmp_path, keys=["env:NO_SUCH_KEY_VAR"]))
    assert (await send(broken, "b", releases["1.1.0"]))["error"]["code"] == "untrusted_release"
    assert not (tmp_path / "calls").exists()


async def test_the_old_unsigned_wheel_form_is_refused(tmp_path: Path) -> None:
    router = router_for(installer(tmp_path, INSTALLED), config(tmp_path))
    payload = {"id": "w", "version": "1.1.0", "wheel": "/srv/appliance-1.1.0-py3-none-any.whl"}
    reply = await router.handle("update", json.dumps(payload).encode())
    assert reply["error"]["code"] == "bad_request"
    assert reply["error"]["message"].startswith("wheel: Value error, an unsigned wheel is not installed")
    assert not (tmp_path / "calls").exists()


@pytest.fixture
def http_server(releases: dict[str, Path]) -> Iterator[str]:
    folder = releases["1.1.0"].parent
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_a_release_is_downloaded_from_a_url(tmp_path: Path, releases: dict[str, Path], http_server: str) -> None:
    router = router_for(installer(tmp_path, INSTALLED), config(tmp_path))
    url = f"{http_server}/{releases['1.1.0'].name}"
    assert (await send(router, "h", url, sha256=file_sha256(releases["1.1.0"])))["ok"] is True
    missing = await send(router, "m", f"{http_server}/nope.tar", sha256="0" * 64)
    assert missing["error"]["code"] == "fetch_failed" and "HTTP Error 404" in missing["error"]["message"]


async def test_a_rollback_is_an_error_naming_the_failed_step(tmp_path: Path, releases: dict[str, Path]) -> None:
    message = "step health failed: the new release did not come up healthy; back on 1.0.0"
    body = outcome(outcome="rolled_back", version="1.1.0", running="1.0.0", failed_step="health", message=message)
    reply = await send(router_for(installer(tmp_path, body + "exit 1\n"), config(tmp_path)), "u2", releases["1.1.0"])
    assert reply == {"id": "u2", "ok": False, "error": {"code": "rolled_back", "message": message}}


async def test_the_root_installers_refusal_is_the_reply(tmp_path: Path, releases: dict[str, Path]) -> None:
    body = outcome(outcome="untrusted_release", version="", running="1.0.0", failed_step="verify", message="nope")
    reply = await send(router_for(installer(tmp_path, body + "exit 1\n"), config(tmp_path)), "u", releases["1.1.0"])
    assert reply["error"] == {"code": "untrusted_release", "message": "nope"}


async def test_an_installer_that_dies_without_an_outcome_is_reported(tmp_path: Path, releases: dict[str, Path]) -> None:
    script = installer(tmp_path, "echo 'pip: no space left on device' >&2\nexit 3\n")
    reply = await send(router_for(script, config(tmp_path)), "u3", releases["1.1.0"])
    assert reply["error"] == {
        "code": "update_failed",
        "message": "the installer exited with status 3 and no outcome: pip: no space left on device",
    }


async def test_a_second_update_is_refused_while_the_first_runs(tmp_path: Path, releases: dict[str, Path]) -> None:
    release = tmp_path / "release"
    body = f'while [ ! -e "{release}" ]; do sleep 0.02; done\n' + INSTALLED
    router = router_for(installer(tmp_path, body), config(tmp_path))
    first = asyncio.create_task(send(router, "a", releases["1.1.0"]))
    await asyncio.sleep(0.5)
    second = await send(router, "b", releases["1.2.0"])
    assert second["error"] == {"code": "busy", "message": "an update to 1.1.0 is already running"}
    release.touch()
    assert (await asyncio.wait_for(first, 10))["ok"] is True
    third = await send(router, "c", releases["1.2.0"])  # free again afterwards
    assert third["ok"] is True


async def test_the_event_loop_keeps_running_during_an_install(tmp_path: Path, releases: dict[str, Path]) -> None:
    router = router_for(installer(tmp_path, "sleep 0.6\n" + INSTALLED), config(tmp_path))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(ticker())
    reply = await send(router, "t", releases["1.1.0"])
    task.cancel()
    assert reply["ok"] is True
    assert len(ticks) >= 8 and max(b - a for a, b in itertools.pairwise(ticks)) < 0.3


async def test_a_device_without_an_installer_says_so(tmp_path: Path, releases: dict[str, Path]) -> None:
    reply = await send(router_for(tmp_path / "missing.sh", config(tmp_path)), "n", releases["1.1.0"])
    assert reply["error"]["code"] == "not_available"
    assert str(tmp_path / "missing.sh") in reply["error"]["message"]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ({"release": "appliance-1.1.0.tar", "sha256": "0" * 64}, "release"),
        ({"release": "ftp://example.com/r.tar", "sha256": "0" * 64}, "release"),
        ({"release": "/srv/r.tar", "sha256": "abc"}, "sha256"),
        ({"release": "/srv/r.tar"}, "sha256"),
        ({"release": "/srv/r.tar", "sha256": "0" * 64, "allow_downgrade": "true"}, "allow_downgrade"),
    ],
)
async def test_bad_arguments_never_reach_the_installer(tmp_path: Path, args: dict[str, Any], where: str) -> None:
    router = router_for(installer(tmp_path, ""), config(tmp_path))
    reply = await router.handle("update", json.dumps({"id": "x", **args}).encode())
    assert reply["error"]["code"] == "bad_request" and reply["error"]["message"].startswith(where)
    assert not (tmp_path / "calls").exists()
