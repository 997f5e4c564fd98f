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


def test_the_next_turn_reads_only_its_own_words_after_a_tool_choice_that_asked_the_model(models_dir: Path) -> None:
    """Choosing the timer's arguments runs the model on another prompt; the history is read again in the
    pause after the turn (a prefill), so the next turn evaluates its own words, not the whole history."""
    from appliance.providers.local.llama_llm import LlamaCppLLM

    llm = LlamaCppLLM(models_dir / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf", threads=2)

    async def main() -> list[int]:
        evaluated = []
        async with AgentSession(llm=llm) as session:
            await session.start(Assistant())
            for line in ("What is the capital of France?", "set a timer for five minutes", "And of Spain?"):
                result = await session.run(user_input=line)
                evaluated.append(llm.last_prompt_tokens_evaluated)
                await asyncio.sleep(0.5)  # the user listens, then talks: the prefill runs meanwhile
            result.expect.next_event().is_message(role="assistant")
        await llm.aclose()
        return evaluated

    evaluated = asyncio.run(main())
    assert evaluated[2] < 30, evaluated  # without the prefill: the instructions and the whole history again
