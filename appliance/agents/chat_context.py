"""The conversation so far, trimmed to what the LLM's context can hold."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.providers.base import ChatMessage, Role


@dataclass
class UserMessage:
    """What the user just said, handed to `Agent.on_user_turn_completed`, which may change `content`."""

    content: str
    role: Role = "user"


@dataclass
class ChatContext:
    messages: list[ChatMessage] = field(default_factory=list)

    def add(self, role: Role, content: str) -> None:
        if content.strip():
            self.messages.append(ChatMessage(role, content.strip()))

    def for_llm(self, instructions: str, max_chars: int) -> list[ChatMessage]:
        """System prompt plus the newest messages that fit in `max_chars`.

        Whole exchanges are dropped from the oldest end, so the kept history is a
        stable prefix between trims and the LLM's KV cache stays reusable.
        """
        kept: list[ChatMessage] = []
        budget = max_chars - len(instructions)
        for message in reversed(self.messages):
            budget -= len(message.content) + sum(len(c.name) + len(c.arguments) for c in message.tool_calls) + 16
            if budget < 0 and kept:
                break
            kept.append(message)
        kept.reverse()
        while kept and kept[0].role != "user":
            kept.pop(0)
        return [ChatMessage("system", instructions), *kept]
