"""Remote calls through a real LiveKit server: a caller talks with the agent over WebRTC."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.wav import read_wav
from appliance.ops.livekit_server import LocalLiveKitServer
from tests.integration.conftest import DATA
from tests.integration.livekit_rig import HeadlessAppliance, caller, livekit, livekit_env, wait_until
from tests.integration.speech_check import overlap, transcribe

__all__ = ["livekit"]


def question(name: str) -> np.ndarray:
    return read_wav(DATA / "questions" / f"{name}.wav").samples


def test_a_remote_caller_asks_and_hears_the_answer(
    livekit: LocalLiveKitServer, models_dir: Path, tmp_path: Path
) -> None:
    device = HeadlessAppliance(models_dir, tmp_path, livekit_env(livekit, APPLIANCE_LIVEKIT__AUTO_JOIN="true"))
    try:
        device.wait_for("livekit: kitchen: joined")

        async def call() -> tuple[str, str]:
            peer = await caller(livekit)
            try:
                await wait_until(lambda: "caller_joined identity=caller-1" in device.log(), what="the caller")
                await asyncio.sleep(0.5)
                spoken_until = peer.say(question("q02"))
                await wait_until(lambda: "agent: " in device.log(), timeout=30, what="a reply")
                await asyncio.sleep(4.0)
                heard = AudioChunk(peer.recording(since=spoken_until), ENGINE_RATE)
                return transcribe(models_dir, heard), device.log()
            finally:
                await peer.leave()

        heard, log = asyncio.run(call())
        you = next(line for line in log.splitlines() if line.startswith("you:"))
        agent = next(line for line in log.splitlines() if line.startswith("agent:"))
        assert overlap("How many days are in a week?", you) >= 0.8, you
        assert overlap(agent.removeprefix("agent:"), heard) >= 0.6, (agent, heard)
        device.wait_for("caller_left identity=caller-1")
        assert device.stop() == 0
    finally:
        device.stop()
