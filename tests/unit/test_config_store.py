"""The fleet's saved config: kept atomically, with the last config that ran to come back to."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.fleet.config_store import FAILED_FILE, LAST_GOOD_FILE, STATE_FILE, ConfigStore


def store_in(tmp_path: Path) -> ConfigStore:
    store = ConfigStore(environ={"APPLIANCE_STATE__DIR": str(tmp_path)})
    store.load()
    return store


def save(store: ConfigStore, volume: int, version: int) -> None:
    _, overrides = store.propose({"audio": {"volume": volume}}, version)
    store.commit(overrides, version, {"device": version})


def test_desired_versions_are_saved_with_the_config_and_read_back(tmp_path: Path) -> None:
    save(store_in(tmp_path), 30, 2)
    again = ConfigStore(environ={"APPLIANCE_STATE__DIR": str(tmp_path)})
    assert again.load().audio.volume == 30 and again.version == 2 and again.desired_versions == {"device": 2}


def test_a_start_that_fails_falls_back_to_the_last_config_that_ran(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    save(store, 30, 1)
    store.mark_good()
    save(store, 60, 2)  # saved, but say the box cannot start with it
    config = store.fall_back("cannot start with it: unknown agent 'x'")
    assert config is not None and config.audio.volume == 30 and store.version == 1
    assert json.loads((tmp_path / FAILED_FILE).read_text())["version"] == 2
    assert json.loads((tmp_path / STATE_FILE).read_text())["version"] == 1
    assert store.fallback is not None and "unknown agent 'x'" in store.fallback and "version 1" in store.fallback
    # The next start reads the config that ran; nothing falls back again.
    again = ConfigStore(environ={"APPLIANCE_STATE__DIR": str(tmp_path)})
    assert again.load().audio.volume == 30 and again.fallback is None


def test_when_the_last_config_that_ran_fails_too_the_file_alone_is_used(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    save(store, 30, 1)
    store.mark_good()
    assert store.fall_back("first") is not None
    config = store.fall_back("second", last_good_too=True)
    assert config is not None and config.audio.volume == 100 and store.overrides == {}
    assert not (tmp_path / STATE_FILE).exists() and not (tmp_path / LAST_GOOD_FILE).exists()
    assert store.fallback is not None and "first" in store.fallback and "config file alone" in store.fallback
    assert store.fall_back("third", last_good_too=True) is None  # nothing left to fall back from


def test_an_unreadable_saved_file_falls_back_at_load(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    save(store, 40, 1)
    store.mark_good()
    (tmp_path / STATE_FILE).write_text('{"version": 2, "overrides": {"audio": {"volume": "loud"}}}')
    again = ConfigStore(environ={"APPLIANCE_STATE__DIR": str(tmp_path)})
    assert again.load().audio.volume == 40 and again.fallback is not None and "cannot be used" in again.fallback


def test_without_a_saved_file_there_is_nothing_to_fall_back_to(tmp_path: Path) -> None:
    assert store_in(tmp_path).fall_back("no") is None
