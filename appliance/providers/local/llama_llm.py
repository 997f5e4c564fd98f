"""llama.cpp (through llama-cpp-python) chat completion, streamed token by token.

One `Llama` context lives for the whole process. Each turn's prompt starts
with the previous turn's prompt and reply, and llama-cpp-python keeps the
tokens it evaluated last time, so only the new part of the conversation is
evaluated: the KV cache is reused across turns.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from appliance.providers.base import LLM, ChatMessage, LLMOptions, plain_messages
from appliance.providers.workers import EngineWorker

_GGML_Q8_0 = 8
"""ggml's type id for 8-bit quantized tensors (`GGML_TYPE_Q8_0`)."""

PAUSE_CEILING_S = 1.0
"""Longest a `yield_cpu` pause lasts without its `resume_cpu`: a first piece takes 0.1-0.3 s to synthesize
here, and a reply whose TTS hangs must not hold the LLM for good."""


class LlamaCppLLM(LLM):
    def __init__(
        self,
        model_path: Path,
        threads: int,
        context_tokens: int = 2048,
        descriptor: str = "local/smollm2-135m",
    ) -> None:
        from llama_cpp import Llama

        self._llama = Llama(
            model_path=str(model_path),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=256,
            # The KV cache at 8 bits (flash attention lets the values be quantized too): 2048 tokens of
            # context cost about half the memory; the tool-accuracy and agent tests hold with it.
            type_k=_GGML_Q8_0,
            type_v=_GGML_Q8_0,
            flash_attn=True,
            verbose=False,
        )
        self._worker = EngineWorker("llm")
        self._threads = threads
        self._yield_requested = threading.Event()
        self._resumed = threading.Event()
        self.descriptor = descriptor
        self.last_prompt_tokens_evaluated = 0
        """Prompt tokens the last request had to evaluate (the rest came from the KV cache)."""

    def _generate(self, messages: Sequence[ChatMessage], options: LLMOptions, cancel: threading.Event) -> Iterator[str]:
        self._yield_requested.clear()
        self._resumed.clear()
        self._set_threads(self._threads)
        paused = False
        before = self._prompt_evals()
        chunks: Any = self._llama.create_chat_completion(
            messages=plain_messages(messages),  # type: ignore[arg-type]
            stream=True,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            repeat_penalty=options.repeat_penalty,
            stop=list(options.stop) or None,
        )
        first = True
        try:
            for chunk in chunks:
                if first:
                    self.last_prompt_tokens_evaluated = self._prompt_evals() - before
                    first = False
                if cancel.is_set():
                    break
                if not paused and self._yield_requested.is_set():
                    # Every core to the first audio: measured with `appliance bench` on 2 cores, pausing
                    # here with Piper on both cores brought its first audio from ~250 to ~175 ms p50, where
                    # dropping to one thread each did not; the rest of the reply is not late for it, as the
                    # first piece plays for a second or more.
                    self._resumed.wait(PAUSE_CEILING_S)
                    paused = True
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
        finally:
            chunks.close()

    def _constrained(
        self, messages: Sequence[ChatMessage], grammar: Any, max_tokens: int, threads: int | None = None
    ) -> str:
        self._set_threads(threads or self._threads)
        result: Any = self._llama.create_chat_completion(
            messages=plain_messages(messages),  # type: ignore[arg-type]
            grammar=grammar,
            max_tokens=max_tokens,
            temperature=0.0,
        )
        return str(result["choices"][0]["message"]["content"] or "")

    async def choose(self, messages: Sequence[ChatMessage], options: Sequence[str]) -> str:
        from llama_cpp.llama_grammar import LlamaGrammar

        rule = " | ".join(json.dumps(option) for option in options)
        grammar = LlamaGrammar.from_string(f"root ::= {rule}", verbose=False)
        text = await self._worker.run(lambda: self._constrained(messages, grammar, 24))
        return text.strip() if text.strip() in options else options[-1]

    async def complete_json(self, messages: Sequence[ChatMessage], schema: dict[str, Any]) -> dict[str, Any]:
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = LlamaGrammar.from_json_schema(json.dumps(_grammar_schema(schema)), verbose=False)
        text = await self._worker.run(lambda: self._constrained(messages, grammar, 96))
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def prefill(self, messages: Sequence[ChatMessage]) -> None:
        # One token is generated (and dropped): what matters is the prompt left in the KV cache, which
        # llama-cpp-python reuses for the longest common prefix of the next prompt. Queued on the engine's
        # thread like any request, so a request made after it finds the cache ready. On one thread: it runs
        # while the reply's last words still echo in the room, and a busy second core would starve the
        # audio threads and the echo canceller (the agent then heard its own voice as a new turn).
        self._worker.submit(lambda: self._constrained(messages, None, 1, threads=1))

    def yield_cpu(self) -> None:
        self._yield_requested.set()

    def resume_cpu(self) -> None:
        self._resumed.set()

    def _set_threads(self, threads: int) -> None:
        """Change llama.cpp's thread count; called only from the worker thread, between tokens."""
        import llama_cpp

        llama_cpp.llama_set_n_threads(self._llama.ctx, threads, threads)

    def _prompt_evals(self) -> int:
        """Running count of prompt tokens llama.cpp has evaluated in this context."""
        import llama_cpp

        try:
            data = llama_cpp.llama_perf_context(self._llama.ctx)
            return int(data.n_p_eval)
        except (AttributeError, TypeError):
            return 0

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        async for piece in self._worker.stream(lambda cancel: self._generate(messages, options, cancel)):
            yield piece

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def warm_up(self) -> None:
        async for _ in self.stream([ChatMessage("user", "Hi")], LLMOptions(max_tokens=1)):
            pass

    async def aclose(self) -> None:
        await self._worker.aclose()
        self._llama.close()


def _grammar_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema for the grammar: required keys only (optional ones tempt a small model to invent values)."""
    required = schema.get("required", [])
    properties = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("default", "description")}
        for k, v in schema.get("properties", {}).items()
        if k in required
    }
    return {"type": "object", "properties": properties, "required": list(required)}
