"""Typed conversation: the agent's brain without audio (for `console --text` and tests)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from appliance.agents.agent import Agent
from appliance.agents.chat_context import ChatContext
from appliance.providers.base import LLM, ChatMessage, LLMOptions
from appliance.voice.chunker import clean_for_speech
from appliance.voice.turn_record import TurnRecord


class TextConversation:
    def __init__(self, llm: LLM, agent: Agent, options: LLMOptions, history_chars: int = 4000) -> None:
        self.llm = llm
        self.agent = agent
        self.options = options
        self.history_chars = history_chars
        self.chat = ChatContext()
        self._turns = 0

    async def reply(self, user_text: str) -> AsyncIterator[str]:
        """Stream the reply's text; the turn is recorded in `last_record` when it ends."""
        self._turns += 1
        record = TurnRecord(
            turn=self._turns,
            user_text=user_text,
            agent=self.agent.name,
            providers={"llm": self.llm.descriptor},
        )
        messages = [
            *self.chat.for_llm(self.agent.instructions, self.history_chars),
            ChatMessage("user", user_text),
        ]
        started = time.monotonic()
        pieces: list[str] = []
        async for piece in self.llm.stream(messages, self.options):
            if not pieces:
                record.set_latency("llm_ttft", time.monotonic() - started)
            pieces.append(piece)
            yield piece
        record.agent_text = clean_for_speech("".join(pieces))
        self.chat.add("user", user_text)
        self.chat.add("assistant", record.agent_text)
        self.last_record = record
