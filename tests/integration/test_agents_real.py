"""The agent developer's example from DESIGN.md, on the real local model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance import Agent, AgentSession, RunContext, function_tool


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a kitchen assistant. Answer in one short sentence.")

    @function_tool
    async def set_timer(self, ctx: RunContext[None], minutes: int, label: str = "timer") -> str:
        """Start a countdown timer that rings when it ends."""
        return f"A {minutes} minute {label} is running."


def test_the_design_example_runs_on_the_local_model(models_dir: Path) -> None:
    async def main() -> None:
        async with AgentSession(llm="local/smollm2-135m", models_dir=models_dir) as session:
            await session.start(Assistant())
            result = await session.run(user_input="set a timer for five minutes")
            result.expect.next_event().is_function_call(name="set_timer", arguments={"minutes": 5})
            result.expect.next_event().is_function_call_output(output="A 5 minute timer is running.")
            result.expect.next_event().is_message(role="assistant", contains="5 minute")
            result.expect.no_more_events()

            chat = await session.run(user_input="What is the capital of France?")
            chat.expect.next_event().is_message(role="assistant", contains="paris")

    asyncio.run(main())
