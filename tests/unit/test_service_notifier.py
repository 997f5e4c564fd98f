"""sd_notify against a real unix datagram socket: READY, STATUS, STOPPING, a steady watchdog, a blocked loop."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.system.notify import NotifySocket, notify_address
from appliance.system.service_notifier import ServiceNotifier, watchdog_interval


@dataclass
class Receiver:
    """What systemd's side of NOTIFY_SOCKET sees: every datagram with the time it arrived."""

    sock: socket.socket
    name: str
    messages: list[tuple[float, str]] = field(default_factory=list)

    def fields(self) -> list[str]:
        return [m for _, m in self.messages]

    def pings(self) -> list[float]:
        return [t for t, m in self.messages if m == "WATCHDOG=1"]

    def wait_for(self, count: int, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.005)


def _listen(sock: socket.socket, name: str) -> Iterator[Receiver]:
    receiver = Receiver(sock, name)
    sock.settimeout(0.05)
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            receiver.messages.append((time.monotonic(), data.decode()))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        done.set()
        thread.join()
        sock.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield from _listen(sock, str(path))


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"appliance-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    yield from _listen(sock, "@" + name)


def notifier_for(receiver: Receiver, watchdog_usec: int | None = None, pid: int | None = None) -> ServiceNotifier:
    env = {"NOTIFY_SOCKET": receiver.name}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    if pid is not None:
        env["WATCHDOG_PID"] = str(pid)
    return ServiceNotifier.from_environment(env)


def test_ready_status_and_stopping_arrive_in_order(receiver: Receiver) -> None:
    notifier = notifier_for(receiver)
    notifier.ready("listening")
    notifier.status("thinking")
    notifier.stopping()
    receiver.wait_for(3)
    assert receiver.fields() == ["READY=1\nSTATUS=listening", "STATUS=thinking", "STOPPING=1\nSTATUS=stopping"]


def test_status_is_one_line_and_repeats_are_not_resent(receiver: Receiver) -> None:
    notifier = notifier_for(receiver)
    notifier.status("speaking\nREADY=1")
    notifier.status("speaking\nREADY=1")
    notifier.status("listening")
    receiver.wait_for(2)
    time.sleep(0.05)
    assert receiver.fields() == ["STATUS=speaking READY=1", "STATUS=listening"]


def test_abstract_socket_names_start_with_a_nul_byte(abstract_receiver: Receiver) -> None:
    assert notify_address("@x") == b"\0x"
    notifier = notifier_for(abstract_receiver)
    notifier.ready()
    abstract_receiver.wait_for(1)
    assert abstract_receiver.fields() == ["READY=1"]


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = ServiceNotifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    notifier.ready()
    notifier.stopping()


def test_unusable_addresses_disable_notification() -> None:
    assert notify_address("vsock:2:1234") is None
    assert not NotifySocket.from_environment({"NOTIFY_SOCKET": "relative/path"}).enabled


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    notifier = ServiceNotifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    notifier.ready()
    notifier.ready()


def test_watchdog_interval_honours_watchdog_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None


async def test_watchdog_pings_steadily_at_half_the_interval(receiver: Receiver) -> None:
    notifier = notifier_for(receiver, watchdog_usec=200_000, pid=os.getpid())
    assert notifier.watchdog_interval() == 0.2
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run_watchdog(stop))
    await asyncio.sleep(0.75)
    stop.set()
    await asyncio.wait_for(task, 1)
    receiver.wait_for(8, timeout=0.2)
    pings = receiver.pings()
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert 7 <= len(pings) <= 9, pings
    assert all(0.07 <= gap <= 0.16 for gap in gaps), gaps
    assert sum(gaps) / len(gaps) == pytest.approx(0.1, abs=0.02)


async def test_a_blocked_loop_stops_the_pings(receiver: Receiver) -> None:
    notifier = notifier_for(receiver, watchdog_usec=200_000)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run_watchdog(stop))
    await asyncio.sleep(0.25)
    blocked_from = time.monotonic()
    time.sleep(0.6)  # the loop is stuck: a synchronous call where an await belonged
    blocked_to = time.monotonic()
    await asyncio.sleep(0.25)
    stop.set()
    await asyncio.wait_for(task, 1)
    pings = receiver.pings()
    during = [t for t in pings if blocked_from + 0.01 < t < blocked_to - 0.01]
    assert during == []
    assert any(t < blocked_from for t in pings) and any(t > blocked_to for t in pings)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) > 0.2  # longer than the whole interval: systemd would have restarted us


async def test_no_watchdog_configured_returns_at_once(receiver: Receiver) -> None:
    notifier = notifier_for(receiver)
    await asyncio.wait_for(notifier.run_watchdog(asyncio.Event()), 0.1)
    assert receiver.pings() == []


async def test_watchdog_meant_for_another_process_is_not_fed(receiver: Receiver) -> None:
    notifier = notifier_for(receiver, watchdog_usec=100_000, pid=os.getpid() + 1)
    await asyncio.wait_for(notifier.run_watchdog(asyncio.Event()), 0.1)
    time.sleep(0.05)
    assert receiver.pings() == []
