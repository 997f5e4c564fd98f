"""The home assistant: timers, time and date, volume, and a chef to hand over to."""

from __future__ import annotations

import datetime as dt

from appliance.agents.agent import Agent
from appliance.agents.builtin.timers import Timers, say_duration
from appliance.agents.context import RunContext
from appliance.agents.tools import ToolError, function_tool

HOME_INSTRUCTIONS = (
    "You are a helpful voice assistant in a home. Always reply in English, in one short and simple sentence."
)
CHEF_INSTRUCTIONS = "You are a friendly chef. Give short, practical cooking advice in one or two spoken sentences."


class HomeAssistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=HOME_INSTRUCTIONS, name="assistant")
        self.timers: Timers | None = None
        self.volume = 70

    async def on_enter(self) -> None:
        if self.timers is None and self.runtime is not None:
            self.timers = Timers(self.runtime.announce)

    def _timers(self) -> Timers:
        if self.timers is None:
            if self.runtime is None:
                raise ToolError("timers are not available before the agent has started")
            self.timers = Timers(self.runtime.announce)
        return self.timers

    @function_tool(
        templates=[
            "[please] set (a|an|the) timer for {minutes} minute[s]",
            "[please] set (a|an) {minutes} minute timer",
            "[please] start (a|an) timer for {minutes} minute[s]",
            "[please] start (a|an) {minutes} minute timer",
            "timer for {minutes} minute[s]",
            "[please] set (a|an) {label} timer for {minutes} minute[s]",
            "[please] set (a|an) timer for {minutes} minute[s] (for|called) [the] {label}",
            "remind me in {minutes} minute[s]",
            "wake me [up] in {minutes} minute[s]",
            "time {minutes} minute[s]",
            "count down {minutes} minute[s]",
            "i need (a|an) timer for {minutes} minute[s]",
        ],
        keywords=["timer", "countdown", "minutes", "remind"],
        say_result=True,
    )
    async def set_timer(self, minutes: int, label: str = "timer") -> str:
        """Start a countdown timer that rings when it ends.

        Args:
            minutes: how many minutes the timer runs
            label: what the timer is for, like pasta or eggs
        """
        if not 0 < minutes <= 24 * 60:
            raise ToolError(f"a timer must run between 1 minute and 24 hours, not {minutes} minutes")
        self._timers().start(label, minutes * 60)
        named = label if "timer" in label else f"{label} timer"
        return f"Okay, your {named} is set for {say_duration(minutes * 60)}."

    @function_tool(
        templates=[
            "(cancel|stop|delete|clear) (the|my|all) timer[s]",
            "(cancel|stop|delete|clear) (the|my) {label} timer",
            "(cancel|stop|delete|clear) all [of] [my] timers",
            "turn off the timer",
        ],
        keywords=["cancel", "timer", "stop", "delete", "remove"],
        say_result=True,
    )
    async def cancel_timer(self, label: str | None = None) -> str:
        """Cancel a running timer (or all of them).

        Args:
            label: which timer, like pasta; leave empty for all timers
        """
        cancelled = self._timers().cancel(label)
        if not cancelled:
            return "There is no timer to cancel." if label is None else f"There is no {label} timer."
        return "Timer cancelled." if len(cancelled) == 1 else f"{len(cancelled)} timers cancelled."

    @function_tool(
        templates=[
            "(what|which) timers are (running|set|on)",
            "list [all] [my] [the] timers",
            "how much time is left [on] [the] [my] [timer]",
            "how long is left on [the] [my] timer",
            "(do|have) i have (a|any) timer[s] [running|set]",
            "how long (until|till|before) [my|the] timer [goes off|rings|is done|ends]",
        ],
        keywords=["timer", "left", "running", "long", "until", "remaining"],
        say_result=True,
    )
    async def list_timers(self) -> str:
        """Say which timers are running and how much time each has left."""
        running = list(self._timers().running.values())
        if not running:
            return "No timers are running."
        return " ".join(
            f"The {t.label if 'timer' in t.label else t.label + ' timer'} has {say_duration(t.remaining())} left."
            for t in running
        )

    @function_tool(
        templates=[
            "what time is it [now]",
            "what time it is",
            "what is the time [now]",
            "[tell me] the time",
            "what's the time",
        ],
        keywords=["time", "clock", "hour"],
        say_result=True,
    )
    async def get_time(self) -> str:
        """Tell the current time of day."""
        now = dt.datetime.now()
        return f"It is {now.strftime('%I:%M %p').lstrip('0')}."

    @function_tool(
        templates=[
            "what (day|date) is (it|today) [today]",
            "what is (the|today's) date [today]",
            "what's the date [today]",
            "(what|which) day of the week is it [today]",
            "what day is it",
        ],
        keywords=["date", "calendar"],
        say_result=True,
    )
    async def get_date(self) -> str:
        """Tell today's date and the day of the week."""
        today = dt.date.today()
        return f"Today is {today.strftime('%A, %B')} {today.day}, {today.year}."

    @function_tool(
        templates=[
            "[please] (set|change|put) the volume to {level} [percent]",
            "volume {level} [percent]",
            "[please] set volume to {level} [percent]",
        ],
        keywords=["volume", "loud", "level"],
        say_result=True,
    )
    async def set_volume(self, context: RunContext[None], level: int) -> str:
        """Set the speaker volume.

        Args:
            level: volume from 0 to 100
        """
        if not 0 <= level <= 100:
            raise ToolError(f"the volume goes from 0 to 100, not {level}")
        self.volume = level
        context.runtime.set_volume(level)
        return f"Volume set to {level}."

    @function_tool(
        templates=[
            "[please] turn (it|the volume|the sound|the music) up [a bit|a little]",
            "[please] turn up the (volume|sound|music)",
            "volume up",
            "(make it|speak|be|play it) louder",
            "louder",
            "i can't hear you",
        ],
        keywords=["volume", "louder", "up", "loud"],
        say_result=True,
    )
    async def volume_up(self, context: RunContext[None]) -> str:
        """Turn the speaker volume up a step."""
        return self._step_volume(context, +15)

    @function_tool(
        templates=[
            "[please] turn (it|the volume|the sound|the music) down [a bit|a little]",
            "[please] turn down the (volume|sound|music)",
            "volume down",
            "(make it|speak|be|play it) (quieter|softer)",
            "(quieter|softer)",
            "[it's|it is] too loud[,] [please] turn (it|the sound|the volume) down",
        ],
        keywords=["volume", "quieter", "softer", "down", "loud"],
        say_result=True,
    )
    async def volume_down(self, context: RunContext[None]) -> str:
        """Turn the speaker volume down a step."""
        return self._step_volume(context, -15)

    def _step_volume(self, context: RunContext[None], step: int) -> str:
        self.volume = max(0, min(100, self.volume + step))
        context.runtime.set_volume(self.volume)
        return f"Volume {'up' if step > 0 else 'down'}, now {self.volume}."

    @function_tool(
        templates=[
            "[can i] talk to the chef",
            "(hand|pass|put) me (over|through|on) to the chef",
            "i want to (talk|speak) to the chef",
            "[i need] [some] (cooking|recipe) help",
            "get me the chef",
        ],
        keywords=["chef", "cook", "cooking", "recipe"],
    )
    async def talk_to_chef(self) -> tuple[str, Chef]:
        """Hand the conversation over to the chef for cooking and recipe questions."""
        return "The chef is here.", Chef(home=self)


class Chef(Agent):
    def __init__(self, home: HomeAssistant | None = None) -> None:
        super().__init__(instructions=CHEF_INSTRUCTIONS, name="chef")
        self.home = home

    @function_tool(
        templates=[
            "(go|take me|switch) back to the assistant",
            "back to the assistant",
            "[i want to] talk to the assistant [again]",
            "thanks chef",
        ],
        keywords=["assistant", "back"],
        say_result=True,
    )
    async def back_to_assistant(self) -> tuple[str, HomeAssistant]:
        """Hand the conversation back to the home assistant."""
        return "Back to the assistant.", self.home or HomeAssistant()
