"""Fallback adapters on scripted children: categories, deadlines, no switch after output, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from appliance.audio.frames import AudioChunk, Int16Array
from appliance.providers.base import LLM, STT, TTS, ChatMessage, LLMOptions, RaceWon, Transcript
from appliance.providers.connectivity import Connectivity
from appliance.providers.errors import ErrorCategory, ProviderFailure
from appliance.providers.fallback import (
    AvailabilityChanged,
    FallbackLLM,
    FallbackOptions,
    FallbackSTT,
    FallbackTTS,
)
from tests.virtual_clock import run_virtual

HI = [ChatMessage("user", "hi")]


class ScriptedLLM(LLM):
    """Does what `mode` says: ok, fail:<category>, hang, cut (two tokens then a failure)."""

    def __init__(self, descriptor: str, mode: str = "ok", reply: str = "hello there", cloud: bool = False) -> None:
        self.descriptor = descriptor
        self.mode = mode
        self.reply = reply
        self.is_cloud = cloud
        self.calls = 0

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        self.calls += 1
        if self.mode.startswith("fail:"):
            raise ProviderFailure(self.descriptor, ErrorCategory(self.mode[5:]), "scripted")
        if self.mode == "hang":
            await asyncio.sleep(1e6)
        for index, word in enumerate(self.reply.split()):
            if self.mode == "cut" and index == 2:
                raise ProviderFailure(self.descriptor, ErrorCategory.RETRYABLE, "stream cut")
            yield word + " "


def collect(llm: LLM) -> str:
    async def main() -> str:
        try:
            return "".join([p async for p in llm.stream(HI, LLMOptions())])
        finally:
            await llm.aclose()

    return run_virtual(main())


@pytest.mark.parametrize("category", ["timeout", "offline", "retryable", "permanent"])
def test_a_failing_primary_falls_back_and_says_why(category: str) -> None:
    events: list[AvailabilityChanged] = []
    primary = ScriptedLLM("openai/gpt", f"fail:{category}", cloud=True)
    backup = ScriptedLLM("local/small", reply="from local")
    llm = FallbackLLM([primary, backup])
    llm.on_availability.connect(events.append)
    assert collect(llm) == "from local "
    assert llm.descriptor == "local/small"
    assert events == [AvailabilityChanged("llm", "openai/gpt", False, category)]


def test_no_first_token_within_the_deadline_is_a_timeout() -> None:
    llm = FallbackLLM([ScriptedLLM("a", "hang"), ScriptedLLM("b", reply="ok")], options=FallbackOptions(deadline_s=2.0))
    assert collect(llm) == "ok "
    assert llm.status() == {"a": False, "b": True}


def test_a_stream_cut_half_way_ends_the_reply_without_switching() -> None:
    backup = ScriptedLLM("b", reply="never said")
    llm = FallbackLLM([ScriptedLLM("a", "cut", reply="one two three four"), backup])
    assert collect(llm) == "one two "
    assert backup.calls == 0  # nothing is said twice
    assert llm.status()["a"] is False


def test_the_turn_fails_only_when_every_child_fails() -> None:
    llm = FallbackLLM([ScriptedLLM("a", "fail:retryable"), ScriptedLLM("b", "fail:permanent")])
    with pytest.raises(ProviderFailure, match="every provider failed"):
        collect(llm)


def test_a_failed_child_is_skipped_then_used_again_once_a_probe_succeeds() -> None:
    primary = ScriptedLLM("a", "fail:retryable", reply="primary")
    backup = ScriptedLLM("b", reply="backup")
    llm = FallbackLLM([primary, backup], options=FallbackOptions(probe_initial_s=5.0))
    events: list[AvailabilityChanged] = []
    llm.on_availability.connect(events.append)

    async def main() -> list[str]:
        said = ["".join([p async for p in llm.stream(HI, LLMOptions())])]
        said.append("".join([p async for p in llm.stream(HI, LLMOptions())]))  # skips the failed one
        primary.mode = "ok"
        await asyncio.sleep(6.0)  # the probe finds it working
        said.append("".join([p async for p in llm.stream(HI, LLMOptions())]))
        await llm.aclose()
        return said

    assert run_virtual(main()) == ["backup ", "backup ", "primary "]
    assert [(e.provider, e.available) for e in events] == [("a", False), ("a", True)]
    assert primary.calls == 3  # first try, the probe, the third turn: never tried while down


def test_retry_after_delays_the_probe() -> None:
    class RateLimited(ScriptedLLM):
        async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
            self.calls += 1
            if self.mode == "limited":
                raise ProviderFailure(self.descriptor, ErrorCategory.RETRYABLE, "429", retry_after=30.0)
            yield "ok "

    primary = RateLimited("a", "limited")
    llm = FallbackLLM([primary, ScriptedLLM("b")], options=FallbackOptions(probe_initial_s=1.0))

    async def main() -> int:
        _ = [p async for p in llm.stream(HI, LLMOptions())]
        primary.mode = "ok"
        await asyncio.sleep(20.0)
        calls_before = primary.calls
        await asyncio.sleep(15.0)
        await llm.aclose()
        return calls_before

    assert run_virtual(main()) == 1  # no probe before the 30 s it asked for
    assert primary.calls == 2


def test_offline_skips_cloud_children_at_once_and_cloud_first_prefers_the_cloud_online() -> None:
    cloud = ScriptedLLM("openai/gpt", "fail:offline", reply="cloud", cloud=True)
    local = ScriptedLLM("local/small", reply="local")
    connectivity = Connectivity(hosts=[])
    llm = FallbackLLM([local, cloud], policy="cloud-first", connectivity=connectivity)

    async def main() -> list[str]:
        said = ["".join([p async for p in llm.stream(HI, LLMOptions())])]  # cloud first: it fails offline
        said.append("".join([p async for p in llm.stream(HI, LLMOptions())]))  # offline: cloud not even tried
        await llm.aclose()
        return said

    assert run_virtual(main()) == ["local ", "local "]
    assert cloud.calls == 1
    assert connectivity.online is False


def test_cloud_first_uses_the_cloud_while_it_works() -> None:
    cloud = ScriptedLLM("openai/gpt", reply="cloud", cloud=True)
    llm = FallbackLLM([ScriptedLLM("local/small", reply="local"), cloud], policy="cloud-first")
    assert collect(llm) == "cloud "


class ScriptedSTT(STT):
    def __init__(self, descriptor: str, mode: str = "ok") -> None:
        self.descriptor = descriptor
        self.mode = mode

    async def transcribe(self, audio: Int16Array, language: str | None = None, prompt: str | None = None) -> Transcript:
        if self.mode == "hang":
            await asyncio.sleep(1e6)
        if self.mode == "fail":
            raise ProviderFailure(self.descriptor, ErrorCategory.PERMANENT, "bad key")
        return Transcript(f"heard by {self.descriptor}")


def test_stt_falls_back_on_a_deadline_and_a_permanent_error() -> None:
    async def main() -> list[str]:
        stt = FallbackSTT(
            [ScriptedSTT("a", "hang"), ScriptedSTT("b", "fail"), ScriptedSTT("c")],
            options=FallbackOptions(deadline_s=3.0),
        )
        result = await stt.transcribe(np.zeros(1600, dtype=np.int16))
        await stt.aclose()
        return [result.text, stt.descriptor]

    assert run_virtual(main()) == ["heard by c", "c"]


class ScriptedTTS(TTS):
    sample_rate = 16_000

    def __init__(self, descriptor: str, mode: str = "ok") -> None:
        self.descriptor = descriptor
        self.mode = mode

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        if self.mode == "fail":
            raise ProviderFailure(self.descriptor, ErrorCategory.RETRYABLE, "500")
        yield AudioChunk(np.full(160, 1000, dtype=np.int16), 16_000)
        if self.mode == "cut":
            raise ProviderFailure(self.descriptor, ErrorCategory.RETRYABLE, "cut")
        yield AudioChunk(np.full(160, 2000, dtype=np.int16), 16_000)


def test_tts_switches_between_sentences_but_never_restarts_a_sentence() -> None:
    async def main() -> list[int]:
        tts = FallbackTTS([ScriptedTTS("a", "cut"), ScriptedTTS("b")])
        first = [len(c) async for c in tts.synthesize("One.")]  # cut after its first chunk: not restarted
        second = [len(c) async for c in tts.synthesize("Two.")]  # the next sentence goes to b
        await tts.aclose()
        return [len(first), len(second), int(tts.descriptor == "b")]

    assert run_virtual(main()) == [1, 2, 1]


class PacedLLM(ScriptedLLM):
    """Says its reply after `delay` seconds of silence (a cloud's first-token time)."""

    def __init__(self, descriptor: str, delay: float, cloud: bool = False) -> None:
        super().__init__(descriptor, reply=f"{descriptor} speaks", cloud=cloud)
        self.delay = delay

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        await asyncio.sleep(self.delay)
        async for piece in super().stream(messages, options):
            yield piece


def test_a_late_cloud_is_raced_sooner_once_it_is_known_to_be_quick() -> None:
    cloud, local = PacedLLM("cloud/m", 0.2, cloud=True), PacedLLM("local/m", 0.3)
    llm = FallbackLLM([cloud, local], policy="cloud-first", options=FallbackOptions(deadline_s=4.0, hedge_after_s=0.8))
    events: list[object] = []
    llm.on_availability.connect(events.append)

    async def main() -> list[tuple[str, float]]:
        said = []
        for delay in (0.2, 0.2, 0.2, 1e6):  # quick three times, then it hangs
            cloud.delay = delay
            start = asyncio.get_running_loop().time()
            text = "".join([p async for p in llm.stream(HI, LLMOptions())])
            said.append((text.strip(), round(asyncio.get_running_loop().time() - start, 3)))
        await llm.aclose()
        return said

    said = run_virtual(main())
    assert [s for s, _ in said] == ["cloud/m speaks"] * 3 + ["local/m speaks"]
    # Raced at twice its usual 0.2 s, not at the 0.8 s ceiling: the local answer came 0.4 + 0.3 s in.
    assert said[-1][1] == 0.7
    (race,) = events
    assert race == RaceWon("llm", "cloud/m", "local/m", pytest.approx(0.4))  # type: ignore[arg-type]
    assert local.calls == 1  # never started while the cloud was quick
