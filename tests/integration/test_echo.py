"""Echo cancellation on audio: the agent's voice comes back through a simulated room.

The file transport mixes the agent's output into its own input (60 ms later, at 60 % of its
level) and cleans the input with the echo canceller, as the device path does. The agent must
not hear itself, while a different voice (espeak-ng) talking over it still barges in.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from appliance.app import Appliance
from appliance.audio.echo import EchoCanceller
from appliance.audio.frames import AudioChunk
from appliance.audio.room import RoomEcho
from appliance.audio.wav import read_wav
from appliance.config import load_config
from appliance.transports.file import FileTransport
from appliance.voice.turn_record import TurnRecord
from tests.fakes import join, silence
from tests.integration.conftest import DATA

STORYTELLER = {
    "APPLIANCE_AGENT__INSTRUCTIONS": '"You are a storyteller. Always tell a story of five sentences."',
    "APPLIANCE_LLM__MAX_TOKENS": "160",
}


def converse_in_a_room(models_dir: Path, audio: AudioChunk) -> tuple[list[TurnRecord], AudioChunk]:
    async def main() -> tuple[list[TurnRecord], AudioChunk]:
        config = load_config(environ={**STORYTELLER, "APPLIANCE_MODELS__DIR": str(models_dir)})
        appliance = Appliance(config)
        await appliance.load()
        try:
            session = appliance.new_session(16_000)
            records: list[TurnRecord] = []
            session.on_turn.connect(records.append)
            transport = FileTransport(
                session, realtime=False, room=RoomEcho(delay_ms=60, gain=0.6), echo_canceller=EchoCanceller()
            )
            result = await transport.run(audio)
            await session.aclose()
            return records, result.output
        finally:
            await appliance.aclose()

    return asyncio.run(main())


def test_the_agent_does_not_hear_itself_through_the_room(models_dir: Path) -> None:
    question = read_wav(DATA / "questions" / "q08.wav")
    records, output = converse_in_a_room(models_dir, join(silence(0.5), question, silence(8.0)))
    assert len(records) == 1, [r.to_json() for r in records]
    assert records[0].interrupted is False
    spoken = np.count_nonzero(np.abs(output.samples.astype(np.int32)) > 500) / output.sample_rate
    assert spoken > 2.0  # a long reply played out


def test_another_voice_over_the_agent_still_barges_in(models_dir: Path) -> None:
    question = read_wav(DATA / "questions" / "q08.wav")
    other_voice = read_wav(DATA / "interruption_espeak.wav")
    audio = join(silence(0.5), question, silence(1.5), other_voice, silence(6.0))
    records, _ = converse_in_a_room(models_dir, audio)
    assert records[0].interrupted is True, [r.to_json() for r in records]
    assert len(records) == 2 and records[1].user_text
