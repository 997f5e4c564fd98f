"""`AgentSession`: an agent conversation in text mode, for agent developers' tests and CI.

    async with AgentSession(llm="local/smollm2-135m") as session:
        await session.start(Assistant())
        result = await session.run(user_input="set a timer for five minutes")
        result.expect.next_event().is_function_call(name="set_timer", arguments={"minutes": 5})

No audio is involved; the same runtime drives the voice session.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from appliance.agents.agent import Agent
from appliance.agents.events import ChatMessageEvent, RunEvent
from appliance.agents.runtime import AgentRuntime
from appliance.agents.testing import RunResult
from appliance.providers.base import LLM, LLMOptions


class AgentSession:
    def __init__(
        self,
        llm: str | LLM = "local/smollm2-135m",
        *,
        userdata: Any = None,
        models_dir: Path | str | None = None,
        options: LLMOptions | None = None,
        max_tool_steps: int = 3,
    ) -> None:
        self._llm_spec = llm
        self._models_dir = Path(models_dir) if models_dir else None
        self._owns_llm = isinstance(llm, str)
        self.llm: LLM | None = None if isinstance(llm, str) else llm
        self.userdata = userdata
        self.options = options or LLMOptions(max_tokens=64, temperature=0.0)
        """Greedy by default: a test must give the same answer on every run and every CPU (sampling at
        the device's 0.2, the same small model answered differently on two CPUs of one machine kind)."""
        self.max_tool_steps = max_tool_steps
        """Rounds of tool calls an LLM with native tool calling may make in one turn (LiveKit's name)."""
        self.runtime: AgentRuntime | None = None
        self.announcements: list[str] = []

    async def __aenter__(self) -> AgentSession:
        if self.llm is None:
            self.llm = _build_llm(str(self._llm_spec), self._models_dir)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owns_llm and self.llm is not None:
            await self.llm.aclose()

    @property
    def agent(self) -> Agent:
        if self.runtime is None:
            raise RuntimeError("start(agent) first")
        return self.runtime.agent

    async def start(self, agent: Agent) -> None:
        if self.llm is None:
            await self.__aenter__()
        assert self.llm is not None
        self.runtime = AgentRuntime(
            agent, self.llm, self.options, userdata=self.userdata, max_tool_steps=self.max_tool_steps
        )
        self.runtime.announcer = self._announce
        await self.runtime.start()

    async def _announce(self, text: str) -> None:
        self.announcements.append(text)

    async def run(self, *, user_input: str) -> RunResult:
        """One user turn; returns its events (tool calls, outputs, handoffs, the reply) in order."""
        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("start(agent) before run()")
        events: list[RunEvent] = []
        runtime.on_event.connect(events.append)
        text = ""
        try:
            async for piece in runtime.respond(user_input):
                text += piece
        finally:
            runtime.on_event.disconnect(events.append)
        runtime.commit(user_input, text.strip())
        shown = [e for e in events if not (isinstance(e, ChatMessageEvent) and e.role == "user")]
        return RunResult(user_input, shown, text.strip())

    async def handoff(self, agent: Agent) -> None:
        """Switch the active agent from outside the conversation (an operator, an MQTT command)."""
        if self.runtime is None:
            raise RuntimeError("start(agent) first")
        await self.runtime.handoff(agent)


def _build_llm(descriptor: str, models_dir: Path | None) -> LLM:
    """The same builder `appliance run` uses, over the process's model store; all cores, default context."""
    from appliance.config import LlmConfig, ModelsConfig
    from appliance.models.store import open_store
    from appliance.providers.compute import ComputeBudget
    from appliance.providers.registry import BuildContext, build_llm_chain

    store = open_store(models_dir or ModelsConfig().dir)
    context = BuildContext(store, ComputeBudget.for_cores(0), context_tokens=LlmConfig().context_tokens)
    return build_llm_chain([descriptor], context)
