"""Ports: where a transport's audio goes, and the bounded pipes of the intercom."""

from __future__ import annotations

import numpy as np

from appliance.audio.frames import ENGINE_RATE
from appliance.transports.ports import Announcement, AudioPipe, Intercom


def ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def test_a_pipe_keeps_order_and_reads_silence_when_empty() -> None:
    pipe = AudioPipe(max_s=1.0)
    pipe.write(ramp(100))
    pipe.write(ramp(100, 100))
    assert np.array_equal(pipe.read(150), ramp(150))
    tail = pipe.read(100)
    assert np.array_equal(tail[:50], ramp(50, 150)) and not tail[50:].any()


def test_a_pipe_drops_the_oldest_audio_so_latency_stays_bounded() -> None:
    pipe = AudioPipe(max_s=0.1)
    for i in range(10):
        pipe.write(ramp(ENGINE_RATE // 50, i * ENGINE_RATE // 50))  # 20 ms blocks, 200 ms in all
    kept = pipe.read(ENGINE_RATE)
    assert np.count_nonzero(kept[: ENGINE_RATE // 10]) >= ENGINE_RATE // 10 - 1
    assert not kept[ENGINE_RATE // 10 :].any()
    assert kept[0] == ENGINE_RATE // 10  # the first 100 ms went


async def test_the_intercom_carries_each_side_to_the_other() -> None:
    intercom = Intercom()
    await intercom.device_end.feed(ramp(512))
    await intercom.room_end.feed(ramp(512, 1000))
    assert np.array_equal(intercom.room_end.pull(512, 0.0), ramp(512))
    assert np.array_equal(intercom.device_end.pull(512, 0.0), ramp(512, 1000))
    intercom.clear()
    await intercom.device_end.feed(ramp(10))
    intercom.clear()
    assert not intercom.room_end.pull(10, 0.0).any()


async def test_an_announcement_plays_once_and_hears_nothing() -> None:
    line = Announcement(ramp(300, 1))
    await line.feed(ramp(512))
    assert np.array_equal(line.pull(300, 0.0), ramp(300, 1))
    assert not line.pull(300, 0.0).any()
