"""The one surface that steers a running conversation: mode, mute, push-to-talk, volume, say, stop,
listen, handoff, agent, options, and the state telemetry shows.

The fleet, the console and the service go through here, never into `VoiceSession`. Which conversation
a command acts on is decided here too: the device's own; or, on a headless box in a call, the one in
the room. Activation overrides (a fleet mute, a call) are held on the session (`voice/activation_modes.py`)
so none of them undoes another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from appliance.agents.events import RunEvent
from appliance.app import make_agent, session_options
from appliance.calls.manager import CallManager
from appliance.config import AppConfig
from appliance.providers.base import ProviderEvent
from appliance.voice.activation import ActivationMode
from appliance.voice.activation_modes import ModeOverride
from appliance.voice.announcements import SayQueueFull as SayQueueFull  # the fleet answers it `busy`
from appliance.voice.remote import RecordedSpeech
from appliance.voice.session import VoiceSession
from appliance.voice.state import SessionState
from appliance.voice.turn_record import TurnRecord

PROVIDER_STAGES = ("stt", "llm", "tts")


class NotAvailable(RuntimeError):
    """Nothing to act on: the box runs headless and is in no call (one line)."""


class Reconfigurable(Protocol):
    """What applying a config needs of the appliance (a protocol, so tests can pass a stand-in)."""

    config: AppConfig

    async def swap_providers(self, config: AppConfig, stages: list[str]) -> None: ...


@dataclass(frozen=True)
class ConversationState:
    """What the console, telemetry, the service status and Home Assistant show."""

    state: str
    """listening | thinking | speaking, or `headless` with no conversation to show."""
    hearing: bool
    mode: str
    """The activation mode in force."""
    muted: bool
    talk_pressed: bool
    volume: int
    agent: str
    providers: dict[str, str]


class Control:
    def __init__(
        self,
        session: VoiceSession,
        *,
        appliance: Reconfigurable | None = None,
        calls: CallManager | None = None,
        headless: bool = False,
    ) -> None:
        self.session = session
        """The device's own conversation (on a headless box it only ever talks in rooms)."""
        self.appliance = appliance
        self.calls = calls
        self.headless = headless

    # ----- which conversation --------------------------------------------------------------------

    def conversation(self) -> VoiceSession:
        """The conversation commands act on; raises NotAvailable on a headless box in no call."""
        if not self.headless:
            return self.session
        if self.calls is not None and self.calls.primary_call is not None:
            return self.calls.primary  # headless, in a call: act on the conversation in the room
        raise NotAvailable("this device runs headless and is in no call: no voice session to act on")

    def sessions(self) -> list[VoiceSession]:
        """Every live conversation: the device's and each room's own."""
        found = [self.session]
        if self.calls is not None:
            found += [c.session for c in self.calls.calls if c.session is not None and c.session not in found]
        return found

    # ----- what is going on ----------------------------------------------------------------------

    def state(self) -> ConversationState:
        in_call = self.calls is not None and self.calls.primary_call is not None
        session = self.session if self.headless and not in_call else self.conversation()
        return ConversationState(
            state="headless" if self.headless and not in_call else session.state.value,
            hearing=session.hearing,
            mode=session.activation.mode.value,
            muted=session.activation.mode is ActivationMode.MUTED,
            talk_pressed=session.activation.talk_pressed,
            volume=round(session.output.volume * 100),
            agent=session.agent.name,
            providers=session.providers.descriptors(),
        )

    def on_turn(self, listener: Callable[[TurnRecord], None]) -> None:
        self.session.on_turn.connect(listener)

    def on_state(self, listener: Callable[[SessionState], None]) -> None:
        self.session.on_state.connect(listener)

    def on_transcript(self, listener: Callable[[str, bool], None]) -> None:
        self.session.on_transcript.connect(listener)

    def on_agent_text(self, listener: Callable[[str], None]) -> None:
        self.session.on_agent_text.connect(listener)

    def on_agent_event(self, listener: Callable[[RunEvent], None]) -> None:
        self.session.runtime.on_event.connect(listener)

    def on_availability(self, listener: Callable[[ProviderEvent], None]) -> None:
        providers = self.session.providers
        for provider in (providers.stt, providers.llm, providers.tts):
            provider.on_availability.connect(listener)

    # ----- steering ------------------------------------------------------------------------------

    def choose_mode(self, mode: ActivationMode) -> None:
        """The user's own mode (console keys); a mute or a call still overrides it while it holds."""
        self.conversation().set_activation_mode(mode)

    def mute(self, on: bool) -> bool:
        """Hear nothing (or hear again); a call ending does not undo it. Returns whether muted."""
        session = self.conversation()
        session.hold_mode(ModeOverride.MUTE, on)
        return session.activation.mode is ActivationMode.MUTED

    def toggle_mute(self) -> bool:
        return self.mute(not self.conversation().modes.holds(ModeOverride.MUTE))

    def push_to_talk(self, pressed: bool | None = None) -> None:
        """The talk key went down or up (None: toggle); switches the chosen mode to push-to-talk."""
        session = self.conversation()
        if session.modes.chosen is not ActivationMode.PUSH_TO_TALK:
            session.set_activation_mode(ActivationMode.PUSH_TO_TALK)
        session.push_to_talk(not session.activation.talk_pressed if pressed is None else pressed)

    def set_volume(self, level: int) -> int:
        """Speaker volume 0-100, now."""
        level = max(0, min(100, level))
        self.conversation().output.volume = level / 100
        return level

    def say(self, text: str) -> int:
        """Speak `text` once nothing else is going on (queued; returns at once, with how many wait
        before it). Raises SayQueueFull while `SAY_QUEUE_LIMIT` announcements already wait."""
        return self.conversation().announcements.add(text)

    def announce(self, speech: RecordedSpeech) -> int:
        """Play speech made elsewhere (Home Assistant's announce on its satellite) as an announcement: queued
        with the `say`s, silenced by `stop`. Raises SayQueueFull as `say` does."""
        return self.conversation().announcements.add(speech)

    def stop(self) -> bool:
        """Silence the agent now, and drop the announcements still waiting; True if it was saying
        something (or had something left to say)."""
        session = self.conversation()
        dropped = session.announcements.clear()
        return session.stop_speaking() or dropped > 0

    def listen(self) -> None:
        """Take the next utterance as a request, as if the wake phrase had been said."""
        self.conversation().listen()

    async def set_agent(self, name: str) -> str:
        """Hand the conversation over to the agent registered as `name` (UnknownAgentError if none)."""
        from appliance.agents.registry import create_agent

        agent = create_agent(name)
        await self.conversation().handoff(agent)
        return agent.name

    # ----- config --------------------------------------------------------------------------------

    async def apply_config(self, new: AppConfig, changes: dict[str, list[str]]) -> None:
        """Apply a validated config live: provider chains (every conversation follows at its next
        request), then options and the volume for every conversation, then the agent of the device's."""
        stages = [s for s in PROVIDER_STAGES if s in changes or "providers" in changes or "fallback" in changes]
        if self.appliance is not None:
            if stages:
                await self.appliance.swap_providers(new, stages)
            self.appliance.config = new
        options = session_options(new)
        for session in self.sessions():
            session.update_options(options)
        self.session.output.volume = new.audio.volume / 100
        if "agent" in changes:
            await self.session.handoff(make_agent(new))
