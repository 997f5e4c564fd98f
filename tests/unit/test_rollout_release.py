"""A release rollout's pieces that need no broker: what a release to roll out is, how one batch's replies
and statuses decide each device, and the simulator's stand-in installer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.fleet.rollout_release import InstallWatch, ReleaseRef
from appliance.simulate import installer
from tests.unit.releases import make_release

SHA = "ab" * 32


def test_the_version_is_read_from_a_local_release_and_must_be_given_for_a_url(tmp_path: Path) -> None:
    release = make_release(tmp_path, "2.3.4", Ed25519PrivateKey.generate())
    assert ReleaseRef.parse(str(release), SHA.upper(), None) == ReleaseRef(str(release), SHA, "2.3.4")
    assert ReleaseRef.parse("https://r.example/a.tar", SHA, "2.3.5").version == "2.3.5"
    with pytest.raises(ValueError, match="give the version it installs"):
        ReleaseRef.parse("https://r.example/a.tar", SHA, None)
    with pytest.raises(ValueError, match="give the version it installs"):
        ReleaseRef.parse(str(tmp_path / "missing.tar"), SHA, None)


@pytest.mark.parametrize(
    ("source", "sha256", "version", "said"),
    [
        ("a.tar", SHA, "1.0", "an http(s) URL or an absolute path"),
        ("ftp://r.example/a.tar", SHA, "1.0", "an http(s) URL or an absolute path"),
        ("/srv/a.tar", None, "1.0", "needs the release's sha256"),
        ("/srv/a.tar", "abc", "1.0", "needs the release's sha256"),
        ("/srv/a.tar", SHA, "1 0", "is not a release version"),
    ],
)
def test_a_release_devices_would_refuse_as_a_request_is_refused_here(
    source: str, sha256: str | None, version: str, said: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        ReleaseRef.parse(source, sha256, version)


def watch() -> InstallWatch:
    release = ReleaseRef("/srv/new.tar", SHA, "2.0.0")
    return InstallWatch(release, {"appliance/a/status": "a", "appliance/b/status": "b"}, "appliance/replies/x")


def test_a_device_passes_once_its_status_is_online_with_the_new_version() -> None:
    seen = watch()
    seen.take("appliance/a/status", {"state": "online", "version": "1.0.0"})  # the retained one, before
    seen.take("appliance/a/status", {"state": "offline", "version": "2.0.0"})  # restarting
    assert seen.outcome == {}
    seen.take("appliance/replies/x", {"ok": True, "device": "a", "result": {"outcome": "installed"}})
    assert seen.outcome == {} and seen.answered == {"a": "installed"}  # the status decides, not the reply
    seen.take("appliance/a/status", {"state": "online", "version": "2.0.0"})
    assert seen.outcome == {"a": None}


def test_a_refusal_fails_the_device_at_once_and_strangers_are_ignored() -> None:
    seen = watch()
    seen.take("appliance/replies/x", {"ok": False, "device": "b", "error": {"code": "downgrade", "message": "older"}})
    seen.take("appliance/replies/x", {"ok": False, "device": "c", "error": {"code": "busy", "message": ""}})
    seen.take("appliance/replies/x", "not a reply")
    assert seen.outcome == {"b": "downgrade: older"}


def test_the_stand_in_installer_records_the_version_the_simulated_device_comes_back_with(tmp_path: Path) -> None:
    release = make_release(tmp_path / "build", "2.3.4", Ed25519PrivateKey.generate())
    state, result = tmp_path / "sim-0001", tmp_path / "result.json"
    assert installer.installed_version(state) is None  # never installed: it runs this package's version
    args = ["--state-dir", str(state), "--release", str(release), "--sha256", SHA, "--result-file", str(result)]
    assert installer.main(args) == 0
    assert installer.installed_version(state) == "2.3.4"
    assert json.loads(result.read_text())["outcome"] == "installed"
    assert installer.main(args) == 0
    assert json.loads(result.read_text())["outcome"] == "current"
    assert installer.main([*args[:2], "--release", str(result), *args[4:]]) == 1  # not a release
    assert json.loads(result.read_text())["outcome"] == "failed"


def test_a_version_is_compared_as_a_version_not_as_text() -> None:
    seen = watch()
    seen.take("appliance/b/status", {"state": "online", "version": "2.0"})  # what its __version__ says
    assert seen.outcome == {"b": None}
