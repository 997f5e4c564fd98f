"""The history sent to the LLM: within its budget, starting at a user message, and trimmed in large steps so
the prompt's prefix (and the LLM's KV cache) stays the same for many turns between trims."""

from __future__ import annotations

import itertools

from appliance.agents.chat_context import ChatContext

INSTRUCTIONS = "You are a helpful assistant."
BUDGET = 1000


def test_a_long_conversation_stays_within_budget_and_its_prefix_changes_rarely() -> None:
    chat = ChatContext()
    firsts = []
    for turn in range(60):
        chat.add("user", f"Question number {turn}: what is the weather like today in town?")
        chat.add("assistant", f"Answer {turn}: it is sunny and warm, about twenty degrees, with a light breeze.")
        sent = chat.for_llm(INSTRUCTIONS, BUDGET)
        assert sent[0].role == "system" and sent[1].role == "user"
        assert sum(len(m.content) + 16 for m in sent[1:]) <= BUDGET - len(INSTRUCTIONS)
        assert sent[-1].content.startswith(f"Answer {turn}:")  # the newest exchange is always there
        firsts.append(sent[1].content)
    trims = sum(a != b for a, b in itertools.pairwise(firsts))
    # ~160 characters an exchange: the budget holds ~6; a trim drops about half of them, so one trim every
    # three turns or so, not one every turn once it is full (which re-evaluated the whole history each turn).
    assert 1 <= trims <= 60 // 3, trims


def test_asking_twice_without_a_new_message_sends_the_same_history() -> None:
    chat = ChatContext()
    for turn in range(20):
        chat.add("user", f"Question {turn} " + "x" * 100)
        chat.add("assistant", f"Answer {turn} " + "y" * 100)
    first = chat.for_llm(INSTRUCTIONS, BUDGET)
    assert chat.for_llm(INSTRUCTIONS, BUDGET) == first  # the prefill and the next request agree


def test_a_single_message_over_budget_is_still_sent() -> None:
    chat = ChatContext()
    chat.add("user", "z" * 5000)
    assert [m.role for m in chat.for_llm(INSTRUCTIONS, BUDGET)] == ["system", "user"]
