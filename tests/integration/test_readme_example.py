"""The README's example for agent developers runs as written, on the real local model."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def agent_developer_blocks() -> list[str]:
    section = README.read_text().split("## For agent developers", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_agent_example_and_its_test_pass(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_MODELS__DIR", str(models_dir))
    agent_code, test_code = agent_developer_blocks()
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(agent_code, "README agent example", "exec"), namespace)
    exec(compile(test_code, "README test example", "exec"), namespace)
    asyncio.run(namespace["test_lights"]())
