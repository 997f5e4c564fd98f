"""The unit files: systemd itself accepts them, and they keep the promises the README makes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance.system.lifecycle import EXIT_HUNG, EXIT_RESTART
from tests.integration.firmware.systemd_verify import exec_paths, verify

UNITS_DIR = Path(__file__).resolve().parents[3] / "systemd"
UNITS = ["appliance.service", "appliance-update.service", "appliance-update.path", "appliance-commit.service"]


def lay_out(root: Path, extra: str = "") -> None:
    """The repository's units under root, with a stand-in for every binary they run."""
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(UNITS_DIR / name, target / name)
        for path in exec_paths(UNITS_DIR / name):
            binary = root / path.lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    if extra:
        service = target / "appliance.service"
        service.write_text(service.read_text().replace("[Service]\n", f"[Service]\n{extra}\n"))


def service_settings(wanted: str = "[Service]") -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS_DIR / "appliance.service").read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == wanted and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def unit_settings() -> dict[str, list[str]]:
    return service_settings("[Unit]")


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    lay_out(tmp_path)
    verdict = verify(tmp_path, UNITS)
    assert verdict.code == 0 and verdict.output == "", verdict.output


@pytest.mark.parametrize("mistake", ["ProtectSystem=strictly", "WatchdogSecs=30", "RestrictAddressFamilies=AF_BOGUS"])
def test_verify_catches_a_mistake(tmp_path: Path, mistake: str) -> None:
    lay_out(tmp_path, extra=mistake)
    verdict = verify(tmp_path, UNITS)
    assert verdict.output != ""
    assert "appliance.service" in verdict.output


def test_verify_needs_the_binary_the_unit_runs(tmp_path: Path) -> None:
    lay_out(tmp_path)
    (tmp_path / "opt/appliance/current/.venv/bin/appliance").unlink()
    verdict = verify(tmp_path, UNITS)
    assert verdict.code != 0 and "is not executable" in verdict.output


def test_the_service_keeps_its_promises() -> None:
    s = service_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecStart"] == ["/opt/appliance/current/.venv/bin/appliance run --config /etc/appliance/appliance.toml"]
    assert s["WatchdogSec"] == ["30s"] and s["Restart"] == ["on-failure"]
    # on-failure alone would leave a requested restart (a clean exit) stopped for good
    assert s["RestartForceExitStatus"] == [str(EXIT_RESTART)] and s["SuccessExitStatus"] == [str(EXIT_RESTART)]
    assert EXIT_HUNG not in (0, EXIT_RESTART)
    # A release on trial that cannot start goes back before systemd gives up restarting it.
    assert s["ExecStartPre"] == ["+/opt/appliance/scripts/boot-check.sh --max-starts 3"]
    assert int(unit_settings()["StartLimitBurst"][0]) > 3
    unit = unit_settings()
    ordering = " ".join(unit.get("Wants", []) + unit.get("After", []) + unit.get("Requires", []))
    assert "network-online.target" not in ordering and "time-sync" not in ordering  # an offline box boots at once
    assert s["User"] == ["appliance"] and s["SupplementaryGroups"] == ["audio"]
    for directory in ("StateDirectory", "ConfigurationDirectory", "CacheDirectory"):
        assert s[directory] == ["appliance"]
    hardening = {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                 "DevicePolicy": "closed", "DeviceAllow": "char-alsa rw"}  # fmt: skip
    for key, value in hardening.items():
        assert s[key] == [value], key
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert s["MemoryMax"] and s["EnvironmentFile"] == ["-/etc/appliance/appliance.env"]
