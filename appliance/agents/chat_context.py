"""The conversation so far, trimmed to what the LLM's context can hold."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.providers.base import ChatMessage, Role


@dataclass
class UserMessage:
    """What the user just said, handed to `Agent.on_user_turn_completed`, which may change `content`."""

    content: str
    role: Role = "user"


TRIM_TO = 0.5
"""When the history outgrows its budget, the oldest exchanges go until it fills no more than this share of it."""


@dataclass
class ChatContext:
    messages: list[ChatMessage] = field(default_factory=list)
    _start: int = 0
    """The oldest message still sent to the LLM; it only moves forward, and in large steps."""

    def add(self, role: Role, content: str) -> None:
        if content.strip():
            self.messages.append(ChatMessage(role, content.strip()))

    def for_llm(self, instructions: str, max_chars: int) -> list[ChatMessage]:
        """System prompt plus the newest messages that fit in `max_chars`, starting at a user message.

        Trimmed in large steps: once the history outgrows the budget, whole exchanges are dropped from the
        oldest end until it fills `TRIM_TO` of it, and the start stays there until it outgrows it again.
        Every drop changes the prompt right after the system prompt, so the LLM must evaluate the whole kept
        history again (~5 ms a token on 2 cores here: about 6 s for a full budget); dropping one exchange per
        turn made every turn of a long conversation pay that (a 50-turn bench: LLM first token p95 13 s).
        """
        budget = max_chars - len(instructions)
        self._start = min(self._start, len(self.messages))
        if self._size(self._start) > budget:
            while self._start < len(self.messages) - 1 and self._size(self._start) > TRIM_TO * budget:
                self._start += 1
        while self._start < len(self.messages) and self.messages[self._start].role != "user":
            self._start += 1
        return [ChatMessage("system", instructions), *self.messages[self._start :]]

    def _size(self, start: int) -> int:
        return sum(
            len(m.content) + sum(len(c.name) + len(c.arguments) for c in m.tool_calls) + 16
            for m in self.messages[start:]
        )
