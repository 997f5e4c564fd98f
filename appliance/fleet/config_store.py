"""Config set over the fleet: versioned, validated as a whole, saved atomically in the state dir.

The saved file holds the fleet's overrides (a patch over the config file), the version of the last
`config.set` and the versions of the desired documents (fleet, group, device) applied; it sits between
the config file and the environment in precedence. A patch is accepted only with a newer version and
only if the whole resulting config validates; otherwise nothing changes.

A copy of the saved file is kept beside it once a start with it succeeded (the last config that ran).
If the saved file cannot be read, or the box cannot start with it, the start falls back to that copy
(or, without one, to the config file alone), sets the failed file aside and says why, so the box
comes online and the fleet can fix it instead of losing it to a restart loop.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.config import AppConfig, ConfigError, deep_merge, load_config

log = logging.getLogger(__name__)

STATE_FILE = "fleet-config.json"
LAST_GOOD_FILE = "fleet-config.last-good.json"
FAILED_FILE = "fleet-config.failed.json"


class StaleVersionError(ValueError):
    """A config.set whose version is not newer than the one in force."""


class ConfigStore:
    def __init__(self, path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.environ = environ
        self.version = 0
        self.overrides: dict[str, Any] = {}
        self.desired_versions: dict[str, int] = {}
        """Desired documents applied, by scope ("all", "group:<name>", "device")."""
        self.state_dir = Path(".state")
        self.fallback: str | None = None
        """Why the saved config was not used at start (reported on the fleet's events), if it was not."""

    def load(self) -> AppConfig:
        """The config in force: file, saved fleet overrides, environment."""
        base = load_config(self.path, self.environ)
        self.state_dir = base.state.dir
        saved = self.state_dir / STATE_FILE
        if not saved.exists():
            return base
        try:
            return self._load_saved(saved)
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
            reason = f"the saved fleet config {saved} cannot be used: {exc}"
            log.warning("%s", reason)
            fallback = self.fall_back(reason)
            return base if fallback is None else fallback

    def _load_saved(self, saved: Path) -> AppConfig:
        data = json.loads(saved.read_text())
        config = load_config(self.path, self.environ, data["overrides"])
        self.version, self.overrides = int(data["version"]), dict(data["overrides"])
        self.desired_versions = {str(k): int(v) for k, v in dict(data.get("desired", {})).items()}
        return config

    def mark_good(self) -> None:
        """The box started with the saved config: keep a copy to come back to."""
        saved = self.state_dir / STATE_FILE
        if saved.exists():
            temporary = self.state_dir / f".{LAST_GOOD_FILE}.tmp"
            shutil.copyfile(saved, temporary)
            temporary.replace(self.state_dir / LAST_GOOD_FILE)

    def fall_back(self, reason: str, last_good_too: bool = False) -> AppConfig | None:
        """The last config that ran (or, if that failed as well, the config file alone) in place of the
        saved one, which is set aside as FAILED_FILE; None when there is nothing to fall back to (no saved
        file in use). `self.fallback` keeps the reason, for the fleet to hear."""
        saved, last_good = self.state_dir / STATE_FILE, self.state_dir / LAST_GOOD_FILE
        if not saved.exists():
            return None
        if last_good_too:
            last_good.unlink(missing_ok=True)  # it fails now too (a model gone since): the file alone
            reason = f"{self.fallback or ''}; {reason}".lstrip("; ")
        saved.replace(self.state_dir / FAILED_FILE)
        self.version, self.overrides, self.desired_versions = 0, {}, {}
        config: AppConfig | None = None
        if last_good.exists():
            try:
                shutil.copyfile(last_good, saved)
                config = self._load_saved(saved)
            except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
                log.warning("the last config that ran (%s) cannot be used either: %s", last_good, exc)
                saved.unlink(missing_ok=True)
                self.version, self.overrides, self.desired_versions = 0, {}, {}
        if config is None:
            config = load_config(self.path, self.environ)
        what = f"the last config that ran (version {self.version})" if self.overrides else "the config file alone"
        self.fallback = f"{reason}; started with {what}, the failed one is kept as {FAILED_FILE}"
        log.error("%s", self.fallback)
        return config

    def propose(self, patch: Mapping[str, Any], version: int | None = None) -> tuple[AppConfig, dict[str, Any]]:
        """The config a patch would give, validated; raises StaleVersionError or ConfigError.
        `version`: a `config.set`'s, which must be newer (desired documents carry their own)."""
        if version is not None and version <= self.version:
            raise StaleVersionError(f"version {version} is not newer than {self.version}")
        overrides = deep_merge(self.overrides, patch)
        return load_config(self.path, self.environ, overrides), overrides

    def commit(
        self, overrides: dict[str, Any], version: int | None = None, desired: Mapping[str, int] | None = None
    ) -> None:
        """Save atomically: a power cut leaves the old file or the new one, never half of one."""
        version = self.version if version is None else version
        desired = dict(self.desired_versions if desired is None else desired)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        target = self.state_dir / STATE_FILE
        temporary = target.with_name(f".{target.name}.tmp")
        with temporary.open("w") as out:
            json.dump({"version": version, "desired": desired, "overrides": overrides}, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(target)
        self.version, self.overrides, self.desired_versions = version, overrides, desired
