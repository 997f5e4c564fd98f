"""Listeners cannot break what they listen to: a raising listener is logged by name, the rest still run."""

from __future__ import annotations

import logging

import pytest

from appliance.emitter import Emitter
from tests.fakes import join, silence, speech
from tests.unit.test_session import converse


def test_every_listener_runs_in_order_with_the_event() -> None:
    emitter: Emitter[[str, bool]] = Emitter("transcript")
    heard: list[tuple[str, str, bool]] = []
    emitter.connect(lambda text, final: heard.append(("first", text, final)))
    emitter.connect(lambda text, final: heard.append(("second", text, final)))
    emitter.emit("hello", True)
    assert heard == [("first", "hello", True), ("second", "hello", True)]


def test_a_raising_listener_is_logged_by_name_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    emitter: Emitter[[int]] = Emitter("turn")
    seen: list[int] = []

    def broken_pipe_printer(_value: int) -> None:
        raise BrokenPipeError("stdout is gone")

    emitter.connect(broken_pipe_printer)
    emitter.connect(seen.append)
    with caplog.at_level(logging.ERROR):
        emitter.emit(7)
    assert seen == [7]
    assert "broken_pipe_printer" in caplog.text and "turn" in caplog.text


def test_a_disconnected_listener_is_not_called_and_disconnecting_twice_is_harmless() -> None:
    emitter: Emitter[[int]] = Emitter("volume")
    seen: list[int] = []
    emitter.connect(seen.append)
    emitter.disconnect(seen.append)
    emitter.disconnect(seen.append)
    emitter.emit(1)
    assert seen == []


def test_a_turn_listener_that_raises_leaves_the_session_listening_and_answering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing_printer(_record: object) -> None:
        raise BrokenPipeError("stdout is gone")

    audio = join(speech(1.0), silence(3.0), speech(1.0), silence(3.0))
    with caplog.at_level(logging.ERROR):
        run = converse(audio, on_turn=failing_printer)
    assert len(run.records) == 2, "the second question was not answered"
    assert run.session.state.value == "listening"
    assert "failing_printer" in caplog.text
