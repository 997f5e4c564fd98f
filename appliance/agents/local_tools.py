"""Tool calling for an LLM that has none of its own (a 135M local model): the router chooses.

One step of a tool turn, shaped like a cloud model's (text pieces, or a tool call): before any tool
ran, the router picks a tool and its arguments (`router.py`) or, with none, the model just talks;
once a tool ran, the model is asked to phrase its result in one sentence. The prompts are the ones a
small model does well with, not the native tool turns a cloud model gets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from appliance.agents.router import ArgumentError
from appliance.providers.base import LLM, ChatMessage, ToolCall

if TYPE_CHECKING:
    from appliance.agents.runtime import AgentRuntime
    from appliance.agents.tool_result import TurnLog

log = logging.getLogger(__name__)


async def routed_step(
    runtime: AgentRuntime, llm: LLM, user_text: str, messages: list[ChatMessage]
) -> AsyncIterator[str | ToolCall]:
    asked = _user_index(messages) + 1
    done = messages[asked:]  # this turn's tool calls and outputs so far
    if not done:
        try:
            choice = await runtime.router.route(user_text, runtime.agent.tools, llm)
        except ArgumentError as exc:
            log.info("no tool: %s", exc)
            choice = None
        if choice is not None:
            yield runtime.turn.call(choice.tool.name, choice.arguments, choice.routed_by)
            return
        prompt = messages[:asked]
    else:
        prompt = [*messages[:asked], ChatMessage("system", _phrase_the_result(done, runtime.turn))]
    async for piece in llm.stream(prompt, runtime.options):
        yield piece


def _user_index(messages: list[ChatMessage]) -> int:
    return max(i for i, m in enumerate(messages) if m.role == "user")


def _phrase_the_result(done: list[ChatMessage], turn: TurnLog) -> str:
    names = {c.call_id: c.name for m in done for c in m.tool_calls}
    results = " ".join(
        f"The function {names.get(m.tool_call_id, '')} "
        f"{'failed: ' if m.tool_call_id in turn.failed else 'returned: '}{m.content}"
        for m in done
        if m.role == "tool"
    )
    already = f' The user has already heard: "{" ".join(turn.said)}"' if turn.said else ""
    return f"{results}{already} Answer the user's last message in one short sentence using that result."
