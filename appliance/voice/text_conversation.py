"""Typed conversation: the agent (tools, handoffs and all) without audio, for `console --text`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from appliance.agents.agent import Agent
from appliance.agents.events import RunEvent
from appliance.agents.runtime import AgentRuntime
from appliance.providers.base import LLM, LLMOptions
from appliance.voice.chunker import clean_for_speech
from appliance.voice.turn_record import TurnRecord


class TextConversation:
    def __init__(
        self, llm: LLM, agent: Agent, options: LLMOptions, history_chars: int = 4000, max_tool_steps: int = 3
    ) -> None:
        self.runtime = AgentRuntime(agent, llm, options, history_chars=history_chars, max_tool_steps=max_tool_steps)
        self.runtime.on_event.connect(self._on_event)
        self.announcements: asyncio.Queue[str] = asyncio.Queue()
        self.runtime.announcer = self._announce
        self.last_record: TurnRecord | None = None
        self._record: TurnRecord | None = None
        self._turns = 0
        self._started = False

    async def _announce(self, text: str) -> None:
        await self.announcements.put(text)

    def _on_event(self, event: RunEvent) -> None:
        if self._record is not None:
            self._record.note(event)

    async def reply(self, user_text: str) -> AsyncIterator[str]:
        """Stream the reply's text; the turn is recorded in `last_record` when it ends."""
        if not self._started:
            await self.runtime.start()
            self._started = True
        self._turns += 1
        loop = asyncio.get_running_loop()
        record = self._record = TurnRecord(
            turn=self._turns,
            user_text=user_text,
            agent=self.runtime.agent.name,
            providers={"llm": self.runtime.active_llm.descriptor},
        )
        started = loop.time()
        pieces: list[str] = []
        async for piece in self.runtime.respond(user_text):
            if not pieces:
                record.set_latency("llm_ttft", loop.time() - started)
            pieces.append(piece)
            yield piece
        record.agent_text = clean_for_speech("".join(pieces))
        self.runtime.commit(user_text, record.agent_text)
        self.last_record, self._record = record, None
