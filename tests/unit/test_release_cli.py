"""`appliance release`: keygen, sign and verify from the command line, with their exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli.main import main
from tests.unit.releases import make_release


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keygen_sign_and_verify_with_the_configs_trusted_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "release", "keygen", "--out", str(tmp_path / "ops.key"))[0] == 0
    release = make_release(tmp_path, "1.1.0")
    code, out, _ = run(capsys, "release", "sign", str(release), "--key", str(tmp_path / "ops.key"))
    assert code == 0 and out.startswith(f"signed {release} with key ")
    config = tmp_path / "appliance.toml"
    config.write_text(f'[update]\ntrusted_keys = ["file:{tmp_path / "ops.key.pub"}"]\n')

    code, out, _ = run(capsys, "release", "verify", str(release), "--config", str(config), "--json")
    assert code == 0 and json.loads(out)["version"] == "1.1.0"

    again = run(capsys, "release", "sign", str(release), "--key", str(tmp_path / "ops.key"))
    assert again[0] == 2 and "already signed by key" in again[2]


def test_verify_refusals_exit_1_with_their_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "release", "keygen", "--out", str(tmp_path / "a.key"))
    run(capsys, "release", "keygen", "--out", str(tmp_path / "b.key"))
    release = make_release(tmp_path, "1.1.0")
    run(capsys, "release", "sign", str(release), "--key", str(tmp_path / "a.key"))

    code, _, err = run(capsys, "release", "verify", str(release), "--key", str(tmp_path / "b.key.pub"))
    assert code == 1 and err.startswith("appliance: error: untrusted_release: signed only by unknown key(s)")
    code, out, _ = run(capsys, "release", "verify", str(release), "--key", str(tmp_path / "a.key.pub"),
                       "--running", "2.0", "--json")  # fmt: skip
    assert code == 1 and json.loads(out)["code"] == "downgrade"
    code, _, err = run(capsys, "release", "verify", str(release))  # the built-in config trusts no key
    assert code == 1 and "no trusted keys are configured" in err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "release", "verify", str(tmp_path / "none.tar"))
    assert code == 2 and err == f"appliance: error: no release at {tmp_path / 'none.tar'}\n"
    code, out, _ = run(capsys, "release", "verify", str(tmp_path / "none.tar"), "--json")
    assert code == 2 and json.loads(out)["code"] == "bad_usage"
    code, _, err = run(capsys, "release", "build", "--wheel", str(tmp_path / "missing.whl"), "--out", str(tmp_path))
    assert code == 2 and "no wheel at" in err


def test_extract_to_an_existing_folder_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = make_release(tmp_path, "1.1.0")
    code, _, err = run(capsys, "release", "verify", str(release), "--extract-to", str(tmp_path))
    assert code == 2 and err == f"appliance: error: {tmp_path} exists: --extract-to makes a new folder\n"
