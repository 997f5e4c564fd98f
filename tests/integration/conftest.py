"""Integration tests run the real engines from the model store (`appliance models fetch`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.models.manifest import load_manifest
from appliance.models.store import ModelStore
from tests.integration.app_process import kill_leftovers

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MODELS = Path(os.environ.get("APPLIANCE_MODELS__DIR", ROOT / ".models"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    problems = ModelStore(MODELS, load_manifest()).verify()
    if problems:
        pytest.fail(f"the model store at {MODELS} is not ready ({problems[0]}): run `appliance models fetch`")
    return MODELS


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(models_dir: Path, tmp_path: Path) -> Cli:
    def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 300) -> CliResult:
        environment = {**os.environ, "APPLIANCE_MODELS__DIR": str(models_dir), **(env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "appliance", *args],
            cwd=tmp_path,
            env=environment,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture(autouse=True)
def _no_leftover_appliances() -> Iterator[None]:
    """A test that fails half-way does not leave its appliance processes running into the next one."""
    yield
    kill_leftovers()
