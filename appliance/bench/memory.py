"""Where the memory goes: each engine built alone in a fresh process and warmed up, its RSS over what that
process had before (Python, numpy and the appliance imported). The engine's own libraries count toward it
(onnxruntime for Piper, CTranslate2 for Whisper), as they would not be loaded without it.

`python -m appliance.bench.memory STAGE` is the probe; it reads the config as JSON on stdin."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from appliance.config import AppConfig
from appliance.system.process import current_rss_mb, limit_malloc_arenas

STAGES = ("vad", "stt", "llm", "tts")


def memory_by_engine(config: AppConfig) -> dict[str, Any]:
    """MB of RSS per stage (`loaded`: built; `warm`: after its warm-up), and the bare process's."""
    stages: dict[str, Any] = {}
    bare = 0.0
    for stage in STAGES:
        done = subprocess.run(
            [sys.executable, "-m", "appliance.bench.memory", stage],
            input=config.model_dump_json(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
            stages[stage] = {"error": lines[-1]}
            continue
        probe = json.loads(done.stdout)
        bare = probe["before"]
        stages[stage] = {"loaded": probe["loaded"], "warm": probe["warm"]}
    return {"process_before_engines": bare, "engines": stages}


async def _probe(stage: str, config: AppConfig) -> dict[str, float]:
    from appliance.engines import Engines

    engines = Engines(config)
    before = current_rss_mb()
    provider: Any = getattr(engines, stage)()
    loaded = current_rss_mb()
    if stage != "vad":
        await provider.warm_up()
    warm = current_rss_mb()
    return {"before": round(before, 1), "loaded": round(loaded - before, 1), "warm": round(warm - before, 1)}


def main() -> None:
    limit_malloc_arenas()  # as `appliance run` does
    config = AppConfig.model_validate_json(sys.stdin.read())
    print(json.dumps(asyncio.run(_probe(sys.argv[1], config))))


if __name__ == "__main__":
    main()
