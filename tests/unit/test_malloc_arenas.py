"""The process caps glibc's malloc arenas at start, unless the environment already decided."""

from __future__ import annotations

import subprocess
import sys

CHECK = "from appliance.system.process import limit_malloc_arenas as f; print(f())"


def run(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True).stdout


def test_arenas_are_capped_on_glibc_and_an_explicit_setting_wins() -> None:
    assert run({"PATH": "/usr/bin:/bin"}).strip() == "True"
    assert run({"PATH": "/usr/bin:/bin", "MALLOC_ARENA_MAX": "4"}).strip() == "False"
