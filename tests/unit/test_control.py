"""The control surface: one place that steers the conversation, where no override undoes another."""

from __future__ import annotations

import pytest

from appliance.config import AppConfig, load_config
from appliance.control import Control, NotAvailable
from appliance.voice.activation import ActivationMode
from tests.unit.test_call_manager import Box, credentials


async def test_a_fleet_mute_during_a_call_still_holds_when_the_call_ends() -> None:
    box = Box(with_device=True)
    control = Control(box.primary, calls=box.calls)
    await box.calls.start(None)
    await box.calls.handoff_to_room(credentials("hall"))
    assert box.primary.activation.mode is ActivationMode.ALWAYS  # a caller needs no wake phrase
    assert control.mute(True) is True
    await box.calls.handoff_to_local()
    assert box.primary.activation.mode is ActivationMode.MUTED, "the end of the call lifted the fleet's mute"
    assert control.mute(False) is False
    assert box.primary.activation.mode is ActivationMode.WAKE  # the user's own mode comes back
    await box.calls.aclose()


async def test_a_call_while_muted_stays_muted_and_the_users_mode_survives_both() -> None:
    box = Box(with_device=True)
    control = Control(box.primary, calls=box.calls)
    await box.calls.start(None)
    control.mute(True)
    control.choose_mode(ActivationMode.PUSH_TO_TALK)  # chosen while muted: kept for later
    await box.calls.handoff_to_room(credentials("hall"))
    assert box.primary.activation.mode is ActivationMode.MUTED
    control.mute(False)
    assert box.primary.activation.mode is ActivationMode.ALWAYS  # still in the call
    await box.calls.handoff_to_local()
    assert box.primary.activation.mode is ActivationMode.PUSH_TO_TALK
    await box.calls.aclose()


async def test_headless_commands_act_on_the_call_and_say_not_available_without_one() -> None:
    box = Box(with_device=False)
    control = Control(box.primary, calls=box.calls, headless=True)
    await box.calls.start(credentials("kitchen"))
    with pytest.raises(NotAvailable):
        control.stop()
    assert control.state().state == "headless"
    box.room("kitchen").arrive("alice")
    assert control.conversation() is box.primary
    assert control.set_volume(30) == 30 and box.primary.output.volume == pytest.approx(0.3)
    assert control.state().state == "listening" and control.state().volume == 30
    await box.calls.aclose()


async def test_the_console_keys_go_through_control_push_to_talk_and_mute_toggle() -> None:
    box = Box(with_device=True)
    control = Control(box.primary)
    control.push_to_talk()
    assert control.state().mode == "push_to_talk" and control.state().talk_pressed
    control.push_to_talk()
    assert not control.state().talk_pressed
    assert control.toggle_mute() is True and control.state().muted
    assert control.toggle_mute() is False and control.state().mode == "push_to_talk"


class StandInAppliance:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.swapped: list[list[str]] = []

    async def swap_providers(self, config: AppConfig, stages: list[str]) -> None:
        self.swapped.append(stages)


async def test_options_reach_every_conversation_and_a_new_llm_is_swapped_once() -> None:
    box = Box(with_device=True, max_sessions=2)
    appliance = StandInAppliance(load_config(environ={}))
    control = Control(box.primary, appliance=appliance, calls=box.calls)
    await box.calls.start(None)
    await box.calls.join(credentials("porch"))
    box.room("porch").arrive("carol")
    room_session = box.calls.calls[0].session
    assert room_session is not None and room_session is not box.primary
    new = load_config(environ={}, overrides={"endpointing": {"min_silence_ms": 700}, "llm": {"max_tokens": 40}})
    await control.apply_config(new, {"endpointing": ["min_silence_ms"], "llm": ["max_tokens"]})
    assert appliance.swapped == [["llm"]] and appliance.config is new
    for session in (box.primary, room_session):
        assert session.options.endpointing.min_silence_ms == 700
        assert session.runtime.options.max_tokens == 40
    await box.calls.aclose()
