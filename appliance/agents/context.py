"""What a tool gets besides its arguments: the session, the active agent and typed user data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from appliance.agents.agent import Agent
    from appliance.agents.runtime import AgentRuntime

UserData = TypeVar("UserData")


@dataclass
class RunContext(Generic[UserData]):
    runtime: AgentRuntime
    agent: Agent
    function_name: str

    @property
    def userdata(self) -> UserData:
        return self.runtime.userdata  # type: ignore[no-any-return]

    async def say(self, text: str) -> None:
        """Speak (or, in text mode, emit) a line now, before the tool returns."""
        await self.runtime.announce(text)
