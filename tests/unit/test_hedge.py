"""Racing a late stream (`providers/hedge.py`) on the virtual clock: the second starts only when the first
is late, whichever speaks first is kept, and the other is stopped (its cleanup runs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from appliance.providers.hedge import hedge_delay, race
from tests.virtual_clock import run_virtual


class Speaker:
    """A stream that says `words` after `delay` seconds (or fails), and remembers being stopped."""

    def __init__(self, name: str, delay: float, words: tuple[str, ...] = ("hello",), fail: bool = False) -> None:
        self.name, self.delay, self.words, self.fail = name, delay, words, fail
        self.opened_at: float | None = None
        self.closed = False

    async def stream(self) -> AsyncIterator[str]:
        self.opened_at = asyncio.get_running_loop().time()
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                raise ConnectionError(f"{self.name} broke")
            for word in self.words:
                yield f"{self.name}:{word}"
        finally:
            self.closed = True


def run(first: Speaker, second: Speaker, hedge_after: float | None = 0.8, deadline: float = 4.0):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        outcome = await race(first.stream(), deadline, hedge_after, second.stream)
        rest = [item async for item in outcome.stream] if outcome.stream is not None else []
        return outcome, rest

    return run_virtual(main())


def test_a_prompt_first_stream_is_never_raced() -> None:
    cloud, local = Speaker("cloud", 0.3), Speaker("local", 0.1)
    outcome, _ = run(cloud, local)
    assert outcome.winner == 0 and outcome.first == "cloud:hello" and outcome.hedged_after_s is None
    assert local.opened_at is None  # the second never started: no CPU spent on it
    assert abs(outcome.first_after_s - 0.3) < 1e-6


def test_a_late_stream_is_raced_and_the_first_to_speak_is_kept_the_other_stopped() -> None:
    cloud, local = Speaker("cloud", 3600), Speaker("local", 0.2, ("one", "two"))
    outcome, rest = run(cloud, local)
    assert outcome.winner == 1 and outcome.first == "local:one" and rest == ["local:two"]
    assert outcome.hedged_after_s == 0.8 and local.opened_at == 0.8
    assert cloud.closed  # never both: the late one was stopped


def test_a_late_stream_that_speaks_before_its_racer_still_wins() -> None:
    cloud, local = Speaker("cloud", 1.0), Speaker("local", 0.5)
    outcome, _ = run(cloud, local)
    assert outcome.winner == 0 and outcome.first == "cloud:hello" and local.closed


def test_a_failure_during_the_race_leaves_the_other_and_is_reported() -> None:
    cloud, local = Speaker("cloud", 1.0, fail=True), Speaker("local", 0.5)
    outcome, _ = run(cloud, local)
    assert outcome.winner == 1 and isinstance(outcome.errors[0], ConnectionError)


def test_without_racing_a_silent_stream_misses_its_deadline() -> None:
    cloud, local = Speaker("cloud", 3600), Speaker("local", 0.1)
    outcome, _ = run(cloud, local, hedge_after=None, deadline=2.0)
    assert outcome.winner is None and isinstance(outcome.errors[0], TimeoutError) and cloud.closed
    assert local.opened_at is None


def test_late_means_late_for_this_provider() -> None:
    assert hedge_delay([], 0.8) == 0.8  # no history yet: the ceiling
    assert hedge_delay([0.2, 0.25, 0.3], 0.8) == 0.5  # twice its usual
    assert hedge_delay([0.05, 0.05, 0.06], 0.8) == 0.3  # never below the floor
    assert hedge_delay([2.0, 2.5, 3.0], 0.8) == 0.8  # a slow provider is raced at the ceiling
