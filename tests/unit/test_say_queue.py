"""`say` commands: a bounded line, dropped by a stop and by the end of the call, never keeping a
conversation alive (issue 15: 200 says into a call piled up and outlived `stop` and `leave`)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import numpy as np
import pytest

from appliance.audio.frames import AudioChunk
from appliance.control import Control, SayQueueFull
from appliance.voice.announcements import SAY_QUEUE_LIMIT
from appliance.voice.remote import RecordedSpeech
from appliance.voice.session import VoiceSession
from tests.fakes import FakeTTS
from tests.unit.test_call_manager import Box, credentials, session


async def in_a_call() -> tuple[Box, Control]:
    """A headless box whose conversation is in a room with a caller: where `say` goes."""
    box = Box(with_device=False)
    await box.calls.start(credentials("kitchen"))
    box.room("kitchen").arrive("alice")
    return box, Control(box.primary, calls=box.calls, headless=True)


async def saying(conversation: VoiceSession) -> None:
    """Until an announcement's audio is queued to play (nobody pulls it here, so it stays there)."""
    async with asyncio.timeout(5):
        while not conversation.output.queued_samples:
            await asyncio.sleep(0.01)


async def test_a_burst_of_says_is_bounded_and_the_rest_refused_with_one_line() -> None:
    box, control = await in_a_call()
    accepted, refused = 0, []
    for _ in range(200):
        try:
            control.say("Your taxi is here.")
            accepted += 1
        except SayQueueFull as exc:
            refused.append(str(exc))
    assert accepted == SAY_QUEUE_LIMIT and len(refused) == 200 - SAY_QUEUE_LIMIT
    assert "10 announcements are already waiting" in refused[0] and "\n" not in refused[0]
    await saying(control.session)  # the first is being said: room for one more
    assert control.session.announcements.waiting < SAY_QUEUE_LIMIT
    control.say("One more.")
    await box.calls.aclose()


async def test_stop_silences_the_one_being_said_and_drops_those_waiting() -> None:
    box, control = await in_a_call()
    tts = control.session.providers.tts
    assert isinstance(tts, FakeTTS)
    for _ in range(5):
        control.say("Your taxi is here.")
    await saying(control.session)
    assert control.stop() is True
    assert control.session.announcements.waiting == 0
    await asyncio.sleep(0.3)
    assert tts.texts == ["Your taxi is here."]  # nothing after the stop was even synthesized
    assert control.session.idle and control.session.output.queued_samples == 0
    assert control.stop() is False  # nothing left to stop
    await box.calls.aclose()


async def test_says_for_a_call_end_with_it_and_the_next_caller_hears_none() -> None:
    box, control = await in_a_call()
    tts = control.session.providers.tts
    assert isinstance(tts, FakeTTS)
    for _ in range(5):
        control.say("Your taxi is here.")
    await saying(control.session)
    await box.calls.leave("kitchen")
    assert control.session.announcements.waiting == 0 and control.session.output.queued_samples == 0
    await box.calls.join(credentials("hall"))
    box.room("hall").arrive("bob")
    await asyncio.sleep(0.3)
    assert tts.texts == ["Your taxi is here."] and control.session.output.queued_samples == 0
    await box.calls.aclose()


@pytest.mark.parametrize("started", [False, True], ids=["waiting", "speaking"])
async def test_a_closed_conversation_is_not_kept_alive_by_its_says(started: bool) -> None:
    conversation = session()
    for _ in range(5):
        conversation.announcements.add("Your taxi is here.")
    if started:
        await saying(conversation)
    await conversation.aclose()
    assert conversation.announcements.waiting == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "say"]  # nothing left to run, or to leak
    gone = weakref.ref(conversation)
    del conversation
    await asyncio.sleep(0.05)  # let cancelled tasks finish unwinding
    gc.collect()
    assert gone() is None


async def test_speech_made_elsewhere_is_played_as_it_is_in_line_with_the_says_and_a_stop_drops_it() -> None:
    box, control = await in_a_call()
    tts = control.session.providers.tts
    assert isinstance(tts, FakeTTS)
    output = control.session.output
    ramp = np.arange(8000, dtype=np.int16)  # 0.5 s at 16 kHz: every sample different, to find it again
    speech = RecordedSpeech(AudioChunk(ramp, 16_000), "Home Assistant's announcement. Dinner.")
    control.say("Your taxi is here.")
    assert control.announce(speech) == 1  # behind the say
    await saying(control.session)
    assert not await speech.played(timeout=0.2)  # still waiting its turn
    control.session.stop_speaking()  # the say ends; the announcement is next
    assert await speech.played(timeout=5)
    assert tts.texts == ["Your taxi is here."]  # the device's voice said only its own line
    expected = round(len(ramp) * output.sample_rate / 16_000)
    assert abs(output.queued_samples - expected) <= output.sample_rate // 100  # once, though its label is two sentences

    dropped = RecordedSpeech(AudioChunk(ramp, 16_000), "Another one")
    control.say("Your taxi is here.")
    control.announce(dropped)
    assert control.stop() is True
    assert not await dropped.played(timeout=0.3)  # a stop drops it before it starts: never played
    await box.calls.aclose()
