"""The device transport on a virtual sound card: PortAudio opens PulseAudio's mic and speaker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.audio.wav import read_wav
from tests.fakes import silence
from tests.integration.app_process import Appliance
from tests.integration.conftest import DATA
from tests.integration.pulse_rig import PulseRig, pulse_rig
from tests.integration.speech_check import overlap, transcribe


@pytest.fixture
def rig() -> Iterator[PulseRig]:
    with pulse_rig() as rig:
        yield rig


def test_the_device_transport_hears_a_question_and_answers_on_the_speaker(rig: PulseRig, models_dir: Path) -> None:
    app = Appliance(rig, models_dir)
    app.wait_for("sound device: streaming")
    rig.say(silence(0.5))
    rig.say(read_wav(DATA / "questions" / "q01.wav"))
    app.wait_for('"turn": 1')
    time.sleep(4.0)  # let the reply play out
    assert app.stop() == 0
    assert "sound device: closed" in app.log.read_text()
    record = json.loads(app.out.read_text().splitlines()[0])
    assert overlap("what is the capital of france", record["user_text"]) >= 0.6, record
    heard = transcribe(models_dir, rig.speaker())
    assert overlap(record["agent_text"], heard) >= 0.5, (record["agent_text"], heard)


def test_a_device_that_fails_to_open_is_retried_and_never_crashes(rig: PulseRig, models_dir: Path) -> None:
    app = Appliance(rig, models_dir, env={"APPLIANCE_AUDIO__INPUT_DEVICE": "no-such-microphone"})
    app.wait_for("sound device: unavailable")
    time.sleep(2.0)
    assert app.proc.poll() is None  # still running, retrying
    assert app.log.read_text().count("sound device: unavailable") >= 2
    assert app.stop() == 0


def test_the_console_shows_state_transcripts_reply_and_latency(rig: PulseRig, models_dir: Path) -> None:
    app = Appliance(rig, models_dir, command=("console",))
    app.wait_for("sound device: streaming")
    rig.say(silence(0.5))
    rig.say(read_wav(DATA / "questions" / "q04.wav"))
    app.wait_for("turn 1: voice-to-voice")
    assert app.stop() == 0
    lines = app.out.read_text().splitlines()
    assert "[thinking]" in lines and "[speaking]" in lines and lines.count("[listening]") >= 1
    you = next(line for line in lines if line.startswith("you: "))
    assert overlap("what is two plus two", you) >= 0.6
    assert any(line.startswith("agent: ") for line in lines)


def test_wake_mode_on_the_device_ignores_talk_without_the_phrase(rig: PulseRig, models_dir: Path) -> None:
    app = Appliance(rig, models_dir, env={"APPLIANCE_ACTIVATION__MODE": "wake"})
    app.wait_for("sound device: streaming")
    rig.say(silence(0.5))
    rig.say(read_wav(DATA / "questions" / "q01.wav"))
    rig.say(silence(3.0))
    time.sleep(6.0)
    assert app.out.read_text() == ""  # no turn: it was not addressed
    assert app.stop() == 0


def test_a_device_that_disappears_is_reported_and_reopened_when_it_returns(models_dir: Path) -> None:
    with pulse_rig() as rig:
        app = Appliance(rig, models_dir)
        app.wait_for("sound device: streaming")
        rig.pause_server()  # the sound server stops answering: the device is gone
        app.wait_for("sound device: lost", timeout=20)
        assert app.proc.poll() is None
        rig.resume_server()
        deadline = time.monotonic() + 40
        while app.log.read_text().count("sound device: streaming") < 2:
            assert time.monotonic() < deadline, app.log.read_text()
            time.sleep(0.2)
        rig.say(silence(0.5))
        rig.say(read_wav(DATA / "questions" / "q01.wav"))
        app.wait_for('"turn": 1')  # and it works again
        assert app.stop() == 0


@pytest.mark.parametrize("echo_cancellation", [True, False])
def test_through_a_real_echo_loop_the_agent_hears_itself_only_without_echo_cancellation(
    rig: PulseRig, models_dir: Path, echo_cancellation: bool
) -> None:
    rig.echo_gain = 0.6  # the speaker's sound comes back into the mic, through PulseAudio
    app = Appliance(
        rig,
        models_dir,
        env={
            "APPLIANCE_AUDIO__ECHO_CANCELLATION": str(echo_cancellation).lower(),
            "APPLIANCE_AGENT__INSTRUCTIONS": '"You tell stories. Always tell a story of three sentences."',
            "APPLIANCE_LLM__MAX_TOKENS": "60",
        },
    )
    app.wait_for("sound device: streaming")
    rig.say(silence(0.5))
    rig.say(read_wav(DATA / "questions" / "q08.wav"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not app.out.read_text():
        time.sleep(0.2)
    time.sleep(3.0)
    records = [json.loads(line) for line in app.out.read_text().splitlines()]
    clean_single_turn = len(records) == 1 and records[0]["interrupted"] is False
    # With echo cancellation the reply plays out as one turn; without it the agent's own voice
    # pauses it again and again, or cuts it off and comes back as a "user" turn.
    assert clean_single_turn is echo_cancellation, records
    assert app.stop() == 0
