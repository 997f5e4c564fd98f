"""The satellite listener on loopback, driven by the `wyoming` library's client as Home Assistant: who answers
a request when Home Assistant is missing, fails or goes away, and what is played."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from wyoming.audio import AudioChunk as WyomingChunk
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted

from appliance.audio.frames import AudioChunk
from appliance.cli.serve import timer_done_line
from appliance.voice.turn_record import TurnRecord
from appliance.wyoming import satellite as satellite_module
from appliance.wyoming.satellite import LEADING_SILENCE_S, SatelliteServer

REQUEST = np.full(4000, 1000, dtype=np.int16)  # 0.25 s: four chunks of 1024 samples at most

HomeAssistant = Callable[[AsyncTcpClient], Awaitable[None]]


async def until(kind: str, client: AsyncTcpClient) -> list[Event]:
    seen: list[Event] = []
    while (event := await client.read_event()) is not None:
        seen.append(event)
        if event.type == kind:
            return seen
    raise AssertionError(f"closed before {kind}")


def run(home: HomeAssistant | None, *, fallback: bool, timeout_s: float = 2.0) -> tuple[bool, TurnRecord, list[int]]:
    """One request through a satellite whose Home Assistant (if any) has sent run-satellite and then does
    `home`; returns what `answer` said, the record, and the sizes of the chunks played."""

    async def main() -> tuple[bool, TurnRecord, list[int]]:
        server = SatelliteServer("127.0.0.1", 0, "hey appliance", timeout_s=timeout_s, fallback=fallback)
        await server.start()
        record = TurnRecord(turn=1, agent="assistant", providers={})
        played: list[int] = []
        try:
            if home is None:
                answered = await server.answer(REQUEST, lambda chunk: played.append(len(chunk)), record)
                return answered, record, played
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(RunSatellite().event())
                await client.write_event(Describe().event())
                await until("info", client)  # run-satellite was taken before it
                assert server.connected
                requested = asyncio.create_task(server.answer(REQUEST, lambda c: played.append(len(c)), record))
                await home(client)
                answered = await requested
            return answered, record, played
        finally:
            await server.aclose()

    return asyncio.run(main())


def test_describe_says_it_is_a_satellite_with_the_wake_phrase() -> None:
    async def main() -> Info:
        server = SatelliteServer("127.0.0.1", 0, "hey appliance", timeout_s=1, fallback=True)
        await server.start()
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(Describe().event())
                return Info.from_event((await until("info", client))[-1])
        finally:
            await server.aclose()

    info = asyncio.run(main())
    assert info.satellite is not None and info.satellite.active_wake_words == ["hey_appliance"]
    assert info.satellite.has_vad


def test_home_assistants_spoken_answer_is_played_at_the_devices_rate() -> None:
    async def home(client: AsyncTcpClient) -> None:
        seen = await until("audio-stop", client)
        assert [e.type for e in seen[:2]] == ["run-pipeline", "audio-start"]
        sent = b"".join(WyomingChunk.from_event(e).audio for e in seen if e.type == "audio-chunk")
        lead = int(LEADING_SILENCE_S * 16_000)  # a short silence first, then the request as it was heard
        samples = np.frombuffer(sent, dtype="<i2")
        assert not samples[:lead].any() and np.array_equal(samples[lead:], REQUEST)
        await client.write_event(AudioStart(rate=22050, width=2, channels=1).event())
        await client.write_event(WyomingChunk(rate=22050, width=2, channels=1, audio=bytes(22050 * 2)).event())
        await client.write_event(AudioStop().event())

    answered, record, played = run(home, fallback=False)
    assert answered and not record.error
    assert abs(sum(played) - 16000) <= 32  # one second of answer, resampled to 16 kHz


def test_without_home_assistant_auto_answers_locally_and_home_assistant_mode_fails_with_a_reason() -> None:
    answered, record, _ = run(None, fallback=True)
    assert not answered and not record.error
    answered, record, played = run(None, fallback=False)
    assert (
        answered
        and played == []
        and record.error == "home assistant: Home Assistant is not connected to this satellite"
    )


def test_an_error_a_silence_or_a_lost_connection_hands_the_request_back_in_auto() -> None:
    async def fails(client: AsyncTcpClient) -> None:
        await until("audio-stop", client)
        await client.write_event(Error(text="no stt engine", code="stt-provider-missing").event())

    async def silent(client: AsyncTcpClient) -> None:
        await until("audio-stop", client)
        await asyncio.sleep(0.6)

    async def leaves(client: AsyncTcpClient) -> None:
        await until("audio-stop", client)
        await client.disconnect()

    assert run(fails, fallback=True)[0] is False
    assert run(silent, fallback=True, timeout_s=0.3)[0] is False
    assert run(leaves, fallback=True)[0] is False
    answered, record, _ = run(fails, fallback=False)
    assert answered and "no stt engine" in (record.error or "")


def test_a_paused_satellite_is_not_asked() -> None:
    async def main() -> bool:
        server = SatelliteServer("127.0.0.1", 0, "hey appliance", timeout_s=1, fallback=True)
        await server.start()
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(RunSatellite().event())
                await client.write_event(PauseSatellite().event())
                await client.write_event(Describe().event())
                await until("info", client)
                record = TurnRecord(turn=1, agent="assistant", providers={})
                return await server.answer(REQUEST, lambda _chunk: None, record)
        finally:
            await server.aclose()

    assert asyncio.run(main()) is False


async def announcing_satellite(announced: list[AudioChunk]) -> SatelliteServer:
    """A started satellite whose device plays every announcement at once (into `announced`)."""
    server = SatelliteServer("127.0.0.1", 0, "hey appliance", timeout_s=1, fallback=True)

    async def play(audio: AudioChunk) -> bool:
        announced.append(audio)
        return True

    server.on_announcement = play
    await server.start()
    return server


def test_audio_outside_a_pipeline_is_an_announcement_played_on_the_device_then_played_is_sent() -> None:
    announced: list[AudioChunk] = []

    async def main() -> tuple[list[Event], list[Event]]:
        server = await announcing_satellite(announced)
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(RunSatellite().event())
                # As Home Assistant's announce sends it: 22,050 Hz, 0.5 s, then audio-stop, and it waits for played.
                tone = (np.sin(np.arange(11025) / 5) * 8000).astype("<i2")
                await client.write_event(AudioStart(rate=22050, width=2, channels=1).event())
                for at in range(0, len(tone), 1024):
                    chunk = WyomingChunk(rate=22050, width=2, channels=1, audio=tone[at : at + 1024].tobytes())
                    await client.write_event(chunk.event())
                await client.write_event(AudioStop().event())
                async with asyncio.timeout(5):
                    good = await until("played", client)
                # A bad format is refused with an error, and nothing is played.
                await client.write_event(AudioStart(rate=16000, width=3, channels=1).event())
                async with asyncio.timeout(5):
                    bad = await until("error", client)
            return good, bad
        finally:
            await server.aclose()

    good, bad = asyncio.run(main())
    assert [e.type for e in good] == ["played"]
    assert len(announced) == 1 and announced[0].sample_rate == 16000
    assert abs(announced[0].duration - 0.5) < 0.02  # all of it, at the device's rate
    assert "announcement" in (Error.from_event(bad[-1]).text or "")


def test_an_announcement_the_device_could_not_play_gets_no_played() -> None:
    async def main() -> list[str]:
        server = SatelliteServer("127.0.0.1", 0, "hey appliance", timeout_s=1, fallback=True)

        async def busy(_audio: AudioChunk) -> bool:
            return False

        server.on_announcement = busy
        await server.start()
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                block = np.full(1600, 500, dtype="<i2").tobytes()
                await client.write_event(WyomingChunk(rate=16000, width=2, channels=1, audio=block).event())
                await client.write_event(AudioStop().event())
                await client.write_event(Describe().event())
                async with asyncio.timeout(5):
                    seen = [e.type for e in await until("info", client)]
                try:
                    async with asyncio.timeout(0.5):  # a `played` sent late would come now
                        later = await client.read_event()
                        seen.append(later.type if later else "closed")
                except TimeoutError:
                    pass
                return seen
        finally:
            await server.aclose()

    seen = asyncio.run(main())
    assert "played" not in seen, seen


def test_home_assistants_timers_on_the_satellite_ring_on_the_device_by_name() -> None:
    rang: list[str | None] = []

    async def main() -> None:
        server = SatelliteServer("127.0.0.1", 0, "hey appliance", timeout_s=1, fallback=True)
        server.on_timer_finished = rang.append
        await server.start()
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(RunSatellite().event())
                await client.write_event(TimerStarted(id="t1", total_seconds=300, name="pasta").event())
                await client.write_event(TimerStarted(id="t2", total_seconds=60).event())
                await client.write_event(TimerCancelled(id="t1").event())
                await client.write_event(TimerStarted(id="t3", total_seconds=5, name="tea").event())
                await client.write_event(TimerFinished(id="t3").event())
                await client.write_event(TimerFinished(id="t2").event())
                await client.write_event(Describe().event())
                await until("info", client)  # every event before it was handled
        finally:
            await server.aclose()

    asyncio.run(main())
    assert rang == ["tea", None]  # the cancelled one never rings; an unnamed one rings as "timer"
    assert [timer_done_line(name) for name in rang] == ["Your tea timer is done.", "Your timer is done."]
    assert timer_done_line("egg timer") == "Your egg timer is done."


def test_an_announcement_too_long_to_keep_is_refused_and_nothing_is_played(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(satellite_module, "MAX_ANNOUNCEMENT_S", 0.1)
    announced: list[AudioChunk] = []

    async def main() -> Event:
        server = await announcing_satellite(announced)
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                block = np.full(1024, 500, dtype="<i2").tobytes()
                for _ in range(3):  # 0.19 s
                    await client.write_event(WyomingChunk(rate=16000, width=2, channels=1, audio=block).event())
                await client.write_event(AudioStop().event())
                async with asyncio.timeout(5):
                    return (await until("error", client))[-1]
        finally:
            await server.aclose()

    error = Error.from_event(asyncio.run(main()))
    assert error.code == "bad_audio" and "longer than 0.1 s" in (error.text or "")
    assert announced == []
