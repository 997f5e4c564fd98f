"""Tool use with the real default model (SmolLM2-135M): the 42-command set and unseen tools."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from appliance import Agent, AgentSession, function_tool
from appliance.bench.tool_eval import evaluate_tools
from appliance.providers.local.llama_llm import LlamaCppLLM


def smollm(models_dir: Path) -> LlamaCppLLM:
    return LlamaCppLLM(models_dir / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf", threads=2)


def test_the_home_assistant_gets_at_least_90_percent_of_the_command_set_right(models_dir: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        llm = smollm(models_dir)
        try:
            return await evaluate_tools(llm)
        finally:
            await llm.aclose()

    report = asyncio.run(main())
    assert report.total >= 40
    assert report.accuracy >= 0.9, report.wrong


class House(Agent):
    """An agent developer's tools the project has never seen: no templates, no keywords."""

    def __init__(self) -> None:
        super().__init__(instructions="You control the lights and the thermostat. Reply in one short sentence.")

    @function_tool
    async def set_light(self, room: Literal["kitchen", "bedroom", "living room", "bathroom"], on: bool) -> str:
        """Switch the lights in a room on or off.

        Args:
            room: which room
            on: true to switch the light on, false to switch it off
        """
        return f"The {room} light is {'on' if on else 'off'}."

    @function_tool
    async def set_temperature(self, degrees: int) -> str:
        """Set the thermostat to a temperature in degrees.

        Args:
            degrees: the target temperature in degrees Celsius
        """
        return f"Thermostat set to {degrees} degrees."


UNSEEN = [
    ("Turn on the kitchen lights.", "set_light", {"room": "kitchen", "on": True}),
    ("Switch off the light in the bedroom.", "set_light", {"room": "bedroom", "on": False}),
    ("Lights off in the living room please.", "set_light", {"room": "living room", "on": False}),
    ("Turn the bathroom light on.", "set_light", {"room": "bathroom", "on": True}),
    ("Can you switch the kitchen light off?", "set_light", {"room": "kitchen", "on": False}),
    ("Set the thermostat to twenty one degrees.", "set_temperature", {"degrees": 21}),
    ("Make it 19 degrees in here.", "set_temperature", {"degrees": 19}),
    ("What is the capital of Spain?", None, {}),
    ("Tell me something funny.", None, {}),
    ("Heat the house to twenty-two degrees.", "set_temperature", {"degrees": 22}),
]


def test_tools_the_project_has_never_seen_are_routed_and_filled(models_dir: Path) -> None:
    async def main() -> list[tuple[str | None, dict[str, object]]]:
        llm = smollm(models_dir)
        got = []
        async with AgentSession(llm=llm) as session:
            await session.start(House())
            for text, _, _ in UNSEEN:
                calls = (await session.run(user_input=text)).function_calls
                got.append((calls[0].name, calls[0].arguments) if calls else (None, {}))
        await llm.aclose()
        return got

    got = asyncio.run(main())
    right = [g == (tool, args) for g, (_, tool, args) in zip(got, UNSEEN, strict=True)]
    assert sum(right) >= 9, list(zip(UNSEEN, got, strict=True))
