"""Config set over the fleet: versioned, validated as a whole, saved atomically in the state dir.

The saved file holds the fleet's overrides (a patch over the config file), the version of the last
`config.set` and the versions of the desired documents (fleet, group, device) applied; it sits between
the config file and the environment in precedence. A patch is accepted only with a newer version and
only if the whole resulting config validates; otherwise nothing changes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.config import AppConfig, ConfigError, deep_merge, load_config

log = logging.getLogger(__name__)

STATE_FILE = "fleet-config.json"


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

    def load(self) -> AppConfig:
        """The config in force: file, saved fleet overrides, environment."""
        base = load_config(self.path, self.environ)
        self.state_dir = base.state.dir
        saved = self.state_dir / STATE_FILE
        if not saved.exists():
            return base
        try:
            data = json.loads(saved.read_text())
            config = load_config(self.path, self.environ, data["overrides"])
        except (OSError, ValueError, KeyError, ConfigError) as exc:
            log.warning("ignoring the saved fleet config %s: %s", saved, exc)
            return base
        self.version, self.overrides = int(data["version"]), dict(data["overrides"])
        self.desired_versions = {str(k): int(v) for k, v in dict(data.get("desired", {})).items()}
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
