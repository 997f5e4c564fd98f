"""The device transport on an idle device, with a fake sound card (no PortAudio here): the speaker's
callback is called as PortAudio calls it, and the loop's side runs when it would be woken.

A silent speaker asks nothing of the loop and the echo canceller rests; the first sound handed to the
speaker goes out in front of the silence it held and wakes the canceller.
"""

from __future__ import annotations

import asyncio

import numpy as np

from appliance.agents.agent import Agent
from appliance.audio.frames import ENGINE_RATE
from appliance.audio.playback import AUDIBLE_LEVEL, PlaybackQueue
from appliance.transports.device import DeviceOptions, DeviceTransport
from appliance.voice.session import VoiceSession
from appliance.voice.turn_state import Providers
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, speech

RATE = 48_000
BLOCK = RATE // 100  # the speaker's 10 ms
MIC_EVERY = 3  # speaker blocks between microphone wake-ups (~32 ms)


class FakeCard:
    """Plays the transport's speaker and tells its loop side when it would have been woken."""

    def __init__(self, transport: DeviceTransport) -> None:
        self.transport = transport
        self.refill_requests = 0
        self.played: list[np.ndarray] = []

    def run(self, seconds: float) -> np.ndarray:
        """Play `seconds`; returns what the speaker played (device rate)."""
        out = []
        for tick in range(round(seconds * 100)):
            block = np.zeros((BLOCK, 1), dtype=np.int16)
            self.transport._on_speaker(block, BLOCK, None, None)
            out.append(block[:, 0].copy())
            if self.transport._refill_pending:  # the callback asked the loop for more
                self.refill_requests += 1
                self.transport._refill()
            if tick % MIC_EVERY == MIC_EVERY - 1:  # a microphone block arrived: the loop tops the speaker up too
                self.transport._refill()
        return np.concatenate(out)


def device() -> tuple[DeviceTransport, VoiceSession]:
    session = VoiceSession(
        Providers(FakeVAD(), FakeSTT(), FakeLLM(), FakeTTS()),
        Agent(instructions="Be brief.", name="tester"),
        PlaybackQueue(ENGINE_RATE),
    )
    transport = DeviceTransport(session, DeviceOptions(echo_cancellation=True))
    transport._use_rates(RATE, RATE)
    transport._use_latency(0.03, 0.02)
    transport._loop = asyncio.get_running_loop()  # what `run` sets; the callbacks' wake-ups land here
    return transport, session


async def hear_silence(transport: DeviceTransport, seconds: float) -> None:
    """The microphone's side: blocks of a quiet room go through the canceller to the session."""
    noise = np.random.default_rng(3)
    for _ in range(round(seconds * ENGINE_RATE / 512)):
        await transport._consume(noise.normal(0, 20, 3 * 512).astype(np.int16))


async def test_a_silent_speaker_asks_nothing_of_the_loop_and_the_canceller_rests() -> None:
    transport, session = device()
    card = FakeCard(transport)
    card.run(1.0)
    await hear_silence(transport, 1.0)
    assert transport._echo is not None and transport._echo.idle
    requests, worked = card.refill_requests, transport._echo.frames_processed
    card.run(2.0)
    await hear_silence(transport, 2.0)
    assert card.refill_requests == requests  # the microphone's wake-ups alone keep it fed
    assert transport._echo.frames_processed == worked
    await session.aclose()


async def test_the_first_sound_goes_out_ahead_of_the_held_silence_and_wakes_the_canceller() -> None:
    transport, session = device()
    card = FakeCard(transport)
    card.run(1.0)
    await hear_silence(transport, 1.0)
    await asyncio.sleep(0)  # the wake-ups the card asked for are behind it
    session.output.play(speech(1.0), utterance=1)
    await asyncio.sleep(0)  # the loop runs what `play` set going; no microphone wake-up needed
    played = card.run(0.05)
    loud = np.flatnonzero(np.abs(played.astype(np.int32)) > AUDIBLE_LEVEL)
    assert len(loud) and loud[0] < 2 * BLOCK, loud[:1]  # not behind ~90 ms of buffered silence
    assert transport._echo is not None and not transport._echo.idle
    requests = card.refill_requests
    card.run(0.5)
    assert card.refill_requests > requests  # while it talks the speaker asks as it drains
    await session.aclose()
