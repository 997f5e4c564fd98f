"""The conversation service: Home Assistant's transcript in, the device's agent's answer out.

The agent runs as in `console --text`: its tools run (a timer is set), handoffs happen, and the exchange is
kept, so a follow-up request from the same pipeline has its context. One conversation serves every Wyoming
client, one request at a time: the agent has one state (its timers, its chat history) however many clients
ask. What the agent says later on its own (a timer ringing) goes where the composition root sends it.
"""

from __future__ import annotations

import asyncio

from appliance.voice.chunker import clean_for_speech
from appliance.voice.text_conversation import TextConversation


class AgentAnswers:
    def __init__(self, conversation: TextConversation) -> None:
        self.conversation = conversation
        self._one_at_a_time = asyncio.Lock()

    @property
    def agent_name(self) -> str:
        return self.conversation.runtime.agent.name

    async def answer(self, text: str) -> str:
        async with self._one_at_a_time:
            pieces = [piece async for piece in self.conversation.reply(text)]
        return clean_for_speech("".join(pieces))
