"""What a tool gets besides its arguments (`RunContext`), and the running session an agent or a tool can
act on (`ctx.session`, `agent.session`), shaped as in LiveKit Agents: `say`, `generate_reply`,
`interrupt`, `userdata`. The same calls work in text mode (the harness) and on the device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from appliance.providers.base import ChatMessage

if TYPE_CHECKING:
    from appliance.agents.agent import Agent
    from appliance.agents.runtime import AgentRuntime

UserData = TypeVar("UserData")


class RunningSession(Generic[UserData]):
    """The conversation an agent runs in."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self._runtime = runtime

    @property
    def userdata(self) -> UserData:
        return self._runtime.userdata  # type: ignore[no-any-return]

    @property
    def current_agent(self) -> Agent:
        return self._runtime.agent

    async def say(self, text: str) -> None:
        """Speak a line now: inside a tool, before its result, as part of the reply; otherwise on the
        agent's own initiative, once nothing else is going on."""
        await self._runtime.announce(text)

    async def generate_reply(self, *, instructions: str | None = None) -> str:
        """Have the agent say something of its own (with extra `instructions` for this once), as a
        reply to the conversation so far; returns what it said."""
        runtime = self._runtime
        messages = runtime.chat.for_llm(runtime.agent.instructions, runtime.history_chars)
        if instructions:
            messages = [*messages, ChatMessage("system", instructions)]
        text = ""
        async for piece in runtime.active_llm.stream(messages, runtime.options):
            text += piece
        text = text.strip()
        if text:
            await runtime.announce(text)
            runtime.chat.add("assistant", text)
        return text

    def interrupt(self) -> bool:
        """Stop what the agent is saying now; True if it was saying something (text mode: False)."""
        return self._runtime.interrupter() if self._runtime.interrupter is not None else False


@dataclass
class RunContext(Generic[UserData]):
    runtime: AgentRuntime
    agent: Agent
    function_name: str

    @property
    def session(self) -> RunningSession[UserData]:
        return RunningSession(self.runtime)

    @property
    def userdata(self) -> UserData:
        return self.runtime.userdata  # type: ignore[no-any-return]

    async def say(self, text: str) -> None:
        """Speak a line now, before the tool returns (the same as `ctx.session.say`)."""
        await self.runtime.announce(text)

    async def wait_for_playout(self) -> None:
        """Until what the agent has said so far in this turn has been heard (`await ctx.say(...)` then
        this, before something the user should hear first happens). In text mode: at once."""
        await self.runtime.wait_for_playout()

    def disallow_interruptions(self) -> None:
        """This turn's reply is heard whole: the user talking over it does not cut it (a confirmation
        that must not be half-heard). Only for this turn."""
        self.runtime.uninterruptible = True
