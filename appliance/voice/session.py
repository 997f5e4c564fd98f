"""The voice session: listen -> think -> speak, with barge-in, on the audio timeline.

A transport feeds 16 kHz frames (`feed`) and drives a `PlaybackQueue` for the
agent's voice. Each frame goes through VAD; the endpointer decides when the
user's turn is over. During the silence that may end a turn the session already
transcribes (speculative STT) and, if the transcript reads as finished, starts
the reply with its playback held, so the first audio is ready the moment the
turn is committed. Speech over the agent pauses its voice at once; if it lasts,
the reply is cancelled and the new speech becomes the next turn; if it was a
short noise, the voice resumes where it paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import numpy as np

from appliance.agents.agent import Agent
from appliance.agents.chat_context import ChatContext
from appliance.agents.events import RunEvent
from appliance.agents.runtime import AgentRuntime
from appliance.aio import TaskSet
from appliance.audio.frames import ENGINE_RATE, AudioChunk, Int16Array
from appliance.audio.playback import PlaybackQueue
from appliance.emitter import Emitter
from appliance.providers.base import ProviderEvent, Transcript
from appliance.voice.activation import ActivationGate, ActivationMode, chime
from appliance.voice.activation_modes import ActivationModes, ModeOverride
from appliance.voice.activity import Activity, SpeechEnded, SpeechStarted, VoiceActivity
from appliance.voice.agent_voice import AgentVoice
from appliance.voice.announcements import Announcements
from appliance.voice.barge_in import BargeInJudge, Verdict
from appliance.voice.endpointing import Endpointer, TurnEndReason, looks_unfinished
from appliance.voice.remote import RecordedSpeech, RemotePipeline, joined
from appliance.voice.reply import Reply, ReplyTimeout, fixed_text
from appliance.voice.state import SessionOptions, SessionState
from appliance.voice.turn_record import TurnRecord
from appliance.voice.turn_state import ActiveTurn, Providers, Speculation

log = logging.getLogger(__name__)

_PREROLL_FRAMES = 8
"""Frames kept from before speech onset (256 ms): VAD confirms speech a little late."""


class VoiceSession:
    def __init__(
        self,
        providers: Providers,
        agent: Agent,
        output: PlaybackQueue,
        options: SessionOptions | None = None,
    ) -> None:
        self.providers = providers
        self.vad = providers.vad.fork()
        """This conversation's own VAD state (the model is shared; the state follows one stream)."""
        self.output = output
        self.options = options or SessionOptions()
        self.runtime = AgentRuntime(
            agent,
            providers.llm,
            self.options.llm,
            history_chars=self.options.history_chars,
            max_tool_steps=self.options.max_tool_steps,
        )
        self.runtime.on_event.connect(self._on_agent_event)
        self.runtime.on_volume.connect(self._set_volume)
        self.runtime.announcer = self.say
        self.runtime.interrupter = self.stop_speaking
        self.runtime.playout = self.wait_for_playout
        for provider in (providers.stt, providers.llm, providers.tts):
            provider.on_availability.connect(self._on_availability)
        self.output.listener = self
        self.state = SessionState.LISTENING
        self.on_turn: Emitter[[TurnRecord]] = Emitter("turn")
        self.on_state: Emitter[[SessionState]] = Emitter("state")
        self.on_transcript: Emitter[[str, bool]] = Emitter("transcript")
        """(text, final): the speculative transcript during a pause, then the final one."""
        self.on_agent_text: Emitter[[str]] = Emitter("agent_text")
        """Each piece of the reply as it starts to play."""
        self.activation = ActivationGate(self.options.activation)
        self.modes = ActivationModes(self.options.activation.mode)
        """The user's chosen mode and the overrides held on it (mute, a call); the gate runs the effective one."""
        self._activity = VoiceActivity(self.options.activity)
        self._endpointer = Endpointer(self.options.endpointing)
        self._now = 0.0
        self._preroll: deque[Int16Array] = deque(maxlen=_PREROLL_FRAMES)
        self._turn_frames: list[Int16Array] | None = None
        self._speculation: Speculation | None = None
        self._active: ActiveTurn | None = None
        self._barge_in = BargeInJudge(self.options.interruption)
        self._turns = 0
        self._utterances = 0
        self._changed = asyncio.Event()
        self._background = TaskSet("voice session")
        self._in_background(self.runtime.start())
        self.announcements = Announcements(self.say)
        """`say` commands, spoken in turn; bounded, dropped by a stop."""
        self.remote: RemotePipeline | None = None  # another pipeline asked first (the device as a satellite)

    # ----- input -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Audio time: seconds of input consumed so far."""
        return self._now

    async def feed(self, frame: Int16Array) -> None:
        """One VAD-sized 16 kHz frame of input."""
        start, end = self._now, self._now + len(frame) / ENGINE_RATE
        self._now = end
        if self.activation.mode is ActivationMode.PUSH_TO_TALK:
            self._preroll.append(frame)
            if self._turn_frames is not None and self.state is SessionState.LISTENING:
                self._turn_frames.append(frame)
            return
        if self.activation.mode is ActivationMode.MUTED:
            return  # time passes; nothing is heard
        probability = await self.vad.probability(frame)
        event = self._activity.update(probability, start, end)
        self._preroll.append(frame)
        if self._turn_frames is not None:
            self._turn_frames.append(frame)
        if self.state is SessionState.LISTENING:
            self._listen(event)
            self._maybe_commit()
        else:
            self._watch_interruption(frame, start, end)

    def _listen(self, event: SpeechStarted | SpeechEnded | None) -> None:
        if isinstance(event, SpeechStarted):
            if self._endpointer.speech_started(event.at):
                self._turn_frames = list(self._preroll)
            else:
                self._drop_speculation()
        elif isinstance(event, SpeechEnded) and self._endpointer.in_turn:
            self._endpointer.speech_ended(event.last_voiced)
            self._speculate()

    def _maybe_commit(self) -> None:
        if not self._endpointer.in_turn:
            return
        text = self._speculation.text if self._speculation else None
        reason = self._endpointer.check(self._now, text)
        if reason is not None:
            self._commit(reason)

    # ----- speculative transcript and held reply ----------------------------------------

    def _speculate(self) -> None:
        self._drop_speculation()
        audio = np.concatenate(self._turn_frames or [np.zeros(0, dtype=np.int16)])
        task = asyncio.create_task(self._transcribe(audio), name="speculative-stt")
        speculation = Speculation(task)
        self._speculation = speculation
        task.add_done_callback(lambda _t: self._on_speculation(speculation))

    async def _transcribe(self, audio: Int16Array) -> Transcript:
        async with asyncio.timeout(self.options.timeouts.stt_s):
            prompt = self.activation.stt_prompt
            return await self.providers.stt.transcribe(audio, self.options.language, prompt)

    def _on_speculation(self, speculation: Speculation) -> None:
        heard = speculation.text
        if heard and self._speculation is speculation:
            self.on_transcript.emit(heard, False)
        if (
            self._speculation is not speculation
            or not self.options.endpointing.preemptive
            or self.state is not SessionState.LISTENING
            or not heard
            or looks_unfinished(heard)
        ):
            return
        text = self.activation.admit(heard, self._now).text
        if text:
            speculation.reply = self._make_reply(text, held=True)
            speculation.reply_text = text

    def _drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is None:
            return
        speculation.task.cancel()
        if speculation.reply is not None:
            self._in_background(speculation.reply.cancel())

    # ----- the committed turn ------------------------------------------------------------

    def _commit(self, reason: TurnEndReason) -> None:
        last_voiced = self._endpointer.last_voiced if reason is not TurnEndReason.MAX_TURN else None
        last_voiced = self._now if last_voiced is None else last_voiced
        self._turns += 1
        self._utterances += 1
        record = TurnRecord(turn=self._turns, agent=self.agent.name, providers=self.providers.descriptors())
        record.set_latency("end_of_turn", self._now - last_voiced)
        active = ActiveTurn(record, self._turn_frames or [], last_voiced, self._utterances, self._speculation)
        self._turn_frames, self._speculation = None, None
        self._endpointer.reset()
        self._active = active
        self._set_state(SessionState.THINKING)
        active.task = asyncio.create_task(self._respond(active), name=f"turn-{record.turn}")

    async def _respond(self, active: ActiveTurn) -> None:
        record = active.record
        try:
            heard = await self._final_transcript(active)
            record.set_latency("stt_final", self._now - active.last_voiced)
            self.on_transcript.emit(heard, True)
            admission = self.activation.admit(heard, self._now)
            if admission.woke:
                self.output.play(chime(), utterance=0)
            if admission.text or admission.woke:
                self.activation.accepted(self._now)  # a request, or just the wake phrase: listen for it
            if not admission.text:
                self._abandon(active)  # no words, a stop phrase, or no wake phrase
                return
            text = record.user_text = admission.text
            play = partial(self._play, active, piece=0)
            if self.remote is not None and await self.remote.answer(joined(active.frames), play, record):
                return self._generated(active)
            speculation = active.speculation
            if speculation and speculation.reply and speculation.reply_text == text:
                active.reply, speculation.reply = speculation.reply, None
            else:
                if speculation and speculation.reply:
                    await speculation.reply.cancel()
                active.reply = self._make_reply(text, held=False)
            active.reply.retarget(lambda chunk, piece: self._play(active, chunk, piece))
            active.reply.release()
            await active.reply.wait()
            metrics = active.reply.metrics
            record.set_latencies(llm_ttft=metrics.llm_ttft, tts_ttfb=metrics.tts_ttfb)
            self._generated(active)
        except asyncio.CancelledError:
            raise
        except (ReplyTimeout, TimeoutError) as exc:
            stage = exc.stage if isinstance(exc, ReplyTimeout) else "stt"
            record.error = str(exc) or f"speech-to-text did not answer within {self.options.timeouts.stt_s:g} s"
            log.warning("turn %d: %s", record.turn, record.error)
            if stage != "tts" and self.options.timeouts.message:
                await self._say_instead(active, self.options.timeouts.message)
            else:
                self._finish(active)
        except Exception as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            log.exception("turn %d failed", record.turn)
            self._finish(active)

    async def _say_instead(self, active: ActiveTurn, text: str) -> None:
        """Speak a fixed line in place of the reply (the LLM or STT failed); quiet if TTS fails too."""
        try:
            async with asyncio.timeout(self.options.timeouts.tts_first_audio_s):
                async for chunk in self.providers.tts.synthesize(text):
                    self._play(active, chunk, 0)
        except Exception as exc:
            log.warning("turn %d: could not say %r: %s", active.record.turn, text, exc)
        self._generated(active)

    async def _final_transcript(self, active: ActiveTurn) -> str:
        speculation = active.speculation
        if speculation is not None:
            with contextlib.suppress(asyncio.CancelledError):
                transcript = await asyncio.shield(speculation.task)
                return transcript.text.strip()
        return (await self._transcribe(joined(active.frames))).text.strip()

    @property
    def agent(self) -> Agent:
        return self.runtime.agent

    @property
    def chat(self) -> ChatContext:
        return self.runtime.chat

    def _make_reply(self, user_text: str, *, held: bool) -> Reply:
        reply = Reply(
            lambda r: self.runtime.respond(user_text, before_side_effects=r.wait_released),
            AgentVoice(self.providers.tts, lambda: self.agent),
            play=lambda _chunk, _piece: None,
            timeouts=self.options.timeouts,
            llm=self.providers.llm,
            held=held,
        )
        reply.start()
        return reply

    def update_options(self, options: SessionOptions) -> None:
        """New endpointing, interruption, activation, timeouts and LLM options, from the next frame on."""
        self.options = options
        self._endpointer.options = options.endpointing
        self._activity.options = options.activity
        self._barge_in.options = options.interruption
        self.activation.options = options.activation
        if options.activation.mode is not self.modes.chosen:
            self.set_activation_mode(options.activation.mode)
        self.runtime.options = options.llm
        self.runtime.max_tool_steps = options.max_tool_steps

    def stop_speaking(self) -> bool:
        """Silence the agent now (a stop command); True if it was saying something."""
        if self._active is None:
            return False
        self._stop_reply()
        self._set_state(SessionState.LISTENING)
        return True

    async def wait_for_playout(self) -> None:
        """Until the reply's text so far has been spoken and heard (a tool's `ctx.wait_for_playout()`)."""
        active = self._active
        reply = active.reply if active is not None else None
        if active is None or reply is None:
            return
        target = reply.pieces_queued
        await self.until(
            lambda: (
                self._active is not active
                or (reply.pieces_played >= target and not self.output.has_audio_for(active.utterance))
            )
        )

    async def finish_sentence(self, limit_s: float = 10.0) -> None:
        """For a clean stop: hear nothing more, let the sentence being spoken end, then stop the reply.

        The transport must keep pulling audio meanwhile (that is what plays the sentence out).
        """
        self.hold_mode(ModeOverride.MUTE)
        if self.state is SessionState.SPEAKING:
            self.output.end_after_current()
            active = self._active
            if active is not None and active.reply is not None:
                # No more text or audio for this reply: what was heard is what the record keeps.
                self._in_background(active.reply.cancel())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limit_s
            while self.output.queued_samples and loop.time() < deadline:
                await asyncio.sleep(0.02)
        self.stop_speaking()

    def listen(self) -> None:
        """Take the next utterance as a request, as if the wake phrase had been said."""
        self.activation.accepted(self._now)

    async def handoff(self, agent: Agent) -> None:
        """Switch the active agent from outside the conversation (an operator, an MQTT command)."""
        await self.runtime.handoff(agent)

    def _on_agent_event(self, event: RunEvent) -> None:
        if self._active is not None:
            self._active.record.note(event)

    def _on_availability(self, event: ProviderEvent) -> None:
        active = self._active
        if active is not None:
            active.record.provider_event(event)

    def _set_volume(self, level: int) -> None:
        self.output.volume = max(0.0, min(1.0, level / 100))

    def _play(self, active: ActiveTurn, chunk: AudioChunk, piece: int) -> None:
        if self._active is not active:
            return
        self.output.play(chunk, active.utterance, piece)
        self._poke()

    def _generated(self, active: ActiveTurn) -> None:
        """All of the turn's audio is made; the turn ends once it has played (or now, if there is none)."""
        active.generated = True
        self._poke()
        if not self.output.has_audio_for(active.utterance):
            self._finish(active)

    def _abandon(self, active: ActiveTurn) -> None:
        """A turn with no words (a noise VAD took for speech): no reply, no record."""
        self._turns -= 1
        self._active = None
        self._set_state(SessionState.LISTENING)

    def _finish(self, active: ActiveTurn, interrupted: bool = False) -> None:
        if self._active is not active:
            return
        record = active.record
        reply = active.reply
        if reply is not None:
            pieces = reply.metrics.pieces
            spoken = [p for i, p in enumerate(pieces) if i in active.pieces_started] if interrupted else pieces
            record.agent_text = " ".join(spoken)
        record.interrupted = interrupted
        self.runtime.uninterruptible = False
        self.activation.reply_finished(self._now)
        if active.announcement:
            self._active = None
            self._set_state(SessionState.LISTENING)
            return
        self.runtime.commit(record.user_text, record.agent_text)
        record.agent = self.runtime.agent.name
        record.providers = self.providers.descriptors()  # after the fact: who actually answered
        self._active = None
        self._set_state(SessionState.LISTENING)  # before the listeners: the conversation goes on whatever they do
        self.on_turn.emit(record)

    # ----- announcements ------------------------------------------------------------------------

    async def say(self, text: str | RecordedSpeech) -> None:
        """Speak on the agent's own initiative (a timer rings), or play speech made elsewhere, once nothing
        else is going on. It behaves like a reply: it can be interrupted, and a stop phrase silences it.
        """
        await self.until(lambda: self.idle)
        self._utterances += 1
        record = TurnRecord(turn=0, agent=self.agent.name, providers=self.providers.descriptors())
        active = ActiveTurn(record, [], self._now, self._utterances, None, announcement=True)
        voice = text if isinstance(text, RecordedSpeech) else self.providers.tts
        reply = Reply(fixed_text(str(text)), voice, partial(self._play, active), self.options.timeouts)
        active.reply = reply
        self._active = active
        self._set_state(SessionState.THINKING)
        reply.start()
        try:
            await reply.wait()
        except Exception as exc:
            log.warning("could not say %r: %s", text, exc)
        self._generated(active)

    # ----- activation: push-to-talk and mode changes ------------------------------------------

    def set_activation_mode(self, mode: ActivationMode) -> None:
        """The user chose a mode (a console key, config); overrides held on the session still apply."""
        self.modes.chosen = mode
        self._apply_mode()

    def hold_mode(self, override: ModeOverride, on: bool = True) -> None:
        """Hold (or let go of) an override: a fleet mute, a call. Letting go never undoes another one."""
        self.modes.hold(override, on)
        self._apply_mode()

    def _apply_mode(self) -> None:
        """Switch to the effective mode at run time; a turn in progress under the old mode is dropped."""
        mode = self.modes.effective
        if mode is self.activation.mode:
            return
        self.activation.mode = mode
        self.activation.talk_pressed = False
        self._turn_frames = None
        self._drop_speculation()
        self._endpointer.reset()
        self._activity.reset()
        self.vad.reset()

    def push_to_talk(self, pressed: bool) -> None:
        """The talk key went down (the user speaks; the agent stops) or up (the turn ends)."""
        if self.activation.mode is not ActivationMode.PUSH_TO_TALK or pressed == self.activation.talk_pressed:
            return
        self.activation.talk_pressed = pressed
        if pressed:
            carried = self._stop_reply()
            self._set_state(SessionState.LISTENING)
            self._endpointer.speech_started(self._now)
            self._turn_frames = carried + list(self._preroll)[-2:]
        elif self._turn_frames is not None:
            self._endpointer.speech_ended(self._now)
            self._commit(TurnEndReason.PUSH_TO_TALK)

    # ----- barge-in ----------------------------------------------------------------------

    def _watch_interruption(self, frame: Int16Array, start: float, end: float) -> None:
        if self.runtime.uninterruptible:
            return  # a tool said this reply must be heard whole (`ctx.disallow_interruptions()`)
        voiced = self._activity.state in (Activity.STARTING, Activity.SPEAKING)
        confirmed = self._activity.state is Activity.SPEAKING
        verdict = self._barge_in.update(frame, start, end, voiced, confirmed, list(self._preroll))
        if verdict is Verdict.PAUSE:
            self.output.pause()
        elif verdict is Verdict.RESUME:
            self.output.resume()
        elif verdict is Verdict.INTERRUPT:
            candidate = self._barge_in.take()
            assert candidate is not None
            carried = self._stop_reply()
            self._set_state(SessionState.LISTENING)
            self._endpointer.speech_started(candidate.start)
            self._turn_frames = carried + candidate.frames
        if verdict is not Verdict.NOTHING:
            self._poke()

    def _stop_reply(self) -> list[Int16Array]:
        """Silence the agent and cancel its reply; returns the user's audio if nothing was heard yet."""
        active = self._active
        self.output.clear()
        carried: list[Int16Array] = []
        if active is not None:
            if active.task is not None:
                active.task.cancel()
            if active.reply is not None:
                # Not awaited: the engines stop at their next token or sentence, and the
                # microphone must keep flowing meanwhile. The voice was already cleared above.
                self._in_background(active.reply.cancel())
            if active.pieces_started:
                self._finish(active, interrupted=True)
            else:
                # Nothing was heard yet: the user was still talking. Keep their words for this turn.
                carried = active.frames
                self._turns -= 1
                self._active = None
        return carried

    # ----- playback callbacks (PlaybackListener) -------------------------------------------

    def on_piece_started(self, utterance: int, piece: int, at: float) -> None:
        active = self._active
        if active is not None and active.utterance == utterance:
            active.pieces_started.add(piece)
            if self.state is SessionState.THINKING:
                self._set_state(SessionState.SPEAKING)
            pieces = active.reply.metrics.pieces if active.reply else []
            if piece < len(pieces):
                self.on_agent_text.emit(pieces[piece])

    def on_audible(self, utterance: int, at: float) -> None:
        active = self._active
        if active is not None and active.utterance == utterance:
            active.record.set_latency("voice_to_voice", at - active.last_voiced)

    def on_drained(self, utterance: int, at: float) -> None:
        active = self._active
        if active is not None and active.utterance == utterance:
            self._poke()  # a tool waiting for its words to be heard (`wait_for_playout`)
            if active.generated:
                self._finish(active)

    # ----- state, readiness, shutdown ------------------------------------------------------

    def _set_state(self, state: SessionState) -> None:
        if state is self.state:
            return
        log.debug("state %s -> %s at %.3f", self.state.value, state.value, self._now)
        self.state = state
        candidate = self._barge_in.take() if state is SessionState.LISTENING else None
        if candidate is not None:
            self.output.resume()
            self._endpointer.speech_started(candidate.start)
            self._turn_frames = candidate.frames
        self.on_state.emit(state)
        self._poke()

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run cleanup without waiting for it, keeping a reference so it is not garbage-collected."""
        self._background.spawn(coro)

    def _poke(self) -> None:
        self._changed.set()

    @property
    def hearing(self) -> bool:
        """The user is talking (a turn is open and not yet committed)."""
        return self.state is SessionState.LISTENING and self._endpointer.in_turn

    @property
    def idle(self) -> bool:
        """Nothing in progress: no user turn, no reply, nothing queued to play."""
        return (
            self.state is SessionState.LISTENING
            and not self._endpointer.in_turn
            and self._active is None
            and self.output.queued_samples == 0
        )

    def ready_for_input(self) -> bool:
        """In `--fast` mode the input waits while the agent computes, so compute takes no audio time."""
        if self.state is SessionState.LISTENING or self.output.paused:
            return True
        active = self._active
        return active is None or active.generated or self.output.queued_samples >= 2 * 512

    async def wait_ready(self) -> None:
        await self.until(self.ready_for_input)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for a condition on the session, checked each time something in it changes."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    async def aclose(self) -> None:
        for provider in (self.providers.stt, self.providers.llm, self.providers.tts):
            provider.on_availability.disconnect(self._on_availability)
        await self.announcements.aclose()
        self._drop_speculation()
        active, self._active = self._active, None
        if active is not None:
            await active.stop()
        self.output.clear()
