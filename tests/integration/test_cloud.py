"""Cloud providers and fallback against real servers on loopback.

llama-cpp-python's OpenAI-compatible server with the packaged GGUF plays the cloud LLM; the
fault server (tests/integration/fault_server.py) plays a broken cloud.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import AgentSession
from appliance.agents.builtin.home import HomeAssistant
from appliance.audio.frames import ENGINE_RATE
from appliance.audio.resample import resample
from appliance.audio.wav import read_wav, write_wav
from appliance.providers.base import AvailabilityChanged, ChatMessage, LLMOptions
from appliance.providers.cloud.openai_client import Endpoint
from appliance.providers.cloud.openai_llm import OpenAILLM
from appliance.providers.cloud.openai_stt import OpenAISTT
from appliance.providers.cloud.openai_tts import OpenAITTS
from appliance.providers.connectivity import Connectivity
from appliance.providers.fallback import FallbackLLM, FallbackOptions, FallbackSTT, FallbackTTS
from appliance.providers.local.llama_llm import LlamaCppLLM
from appliance.providers.local.piper_tts import PiperTTS
from tests.fakes import join, silence
from tests.integration.conftest import DATA, Cli
from tests.integration.fault_server import FaultServer
from tests.integration.speech_check import whisper

HI = [ChatMessage("user", "What is the capital of France?")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(models_dir: Path) -> Iterator[str]:
    port = free_port()
    model = models_dir / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "1",
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "llama_cpp.server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.shutdown()


def local_llm(models_dir: Path) -> LlamaCppLLM:
    return LlamaCppLLM(models_dir / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf", threads=1)


def test_the_cloud_llm_streams_from_an_openai_compatible_server(llama_server: str) -> None:
    async def main() -> list[str]:
        llm = OpenAILLM(Endpoint("openai", llama_server, "sk-unused"), "smollm2", "openai/smollm2")
        pieces = [p async for p in llm.stream(HI, LLMOptions(max_tokens=24))]
        await llm.aclose()
        return pieces

    pieces = asyncio.run(main())
    assert len(pieces) > 1  # streamed, not one block
    assert "".join(pieces).strip()


def test_an_agent_with_tools_talks_through_the_cloud_llm(llama_server: str) -> None:
    async def main() -> list[str]:
        llm = OpenAILLM(Endpoint("openai", llama_server, None), "smollm2", "openai/smollm2")
        async with AgentSession(llm=llm) as session:
            await session.start(HomeAssistant())
            timer = await session.run(user_input="set a timer for five minutes")
            timer.expect.next_event().is_function_call(name="set_timer", arguments={"minutes": 5})
            chat = await session.run(user_input="What is the capital of France?")
            chat.expect.next_event().is_message(role="assistant")
        await llm.aclose()
        return [timer.text, chat.text]

    timer_text, chat_text = asyncio.run(main())
    assert timer_text == "Okay, your timer is set for 5 minutes."
    assert chat_text


def test_a_voice_turn_uses_the_cloud_first_while_it_is_online(cli: Cli, tmp_path: Path, llama_server: str) -> None:
    (tmp_path / "cloud.toml").write_text(
        '[llm]\nprovider = ["local/smollm2-135m", "openai/smollm2"]\npolicy = "cloud-first"\n'
        # No racing: on a busy test machine the stand-in cloud (a second llama.cpp) may be slower than
        # the local model, and this test is about which one the policy asks first.
        "[fallback]\nllm_race_s = 0\n"
        f'[providers.openai]\nbase_url = "{llama_server}"\napi_key = "env:TEST_CLOUD_KEY"\n'
    )
    write_wav(tmp_path / "in.wav", join(silence(0.5), read_wav(DATA / "questions" / "q01.wav"), silence(1.0)))
    result = cli(
        "-vv",
        "run",
        "--config",
        "cloud.toml",
        "--input",
        "in.wav",
        "--output",
        "out.wav",
        "--json",
        "--fast",
        env={"TEST_CLOUD_KEY": "sk-very-secret-value"},
    )
    assert result.code == 0, result.stderr
    (record,) = result.records()
    assert record["providers"]["llm"] == "openai/smollm2"
    assert record["agent_text"]
    assert "sk-very-secret-value" not in result.stdout + result.stderr  # the key never shows


CASES = [
    ("refused", "offline"),
    ("status:500", "retryable"),
    ("status:401", "permanent"),
    ("status:429", "retryable"),
    ("hang", "timeout"),
    ("slow:3", "timeout"),
    ("malformed", "retryable"),
]


@pytest.mark.parametrize(("mode", "category"), CASES)
def test_every_kind_of_broken_cloud_falls_back_to_the_local_model(
    fault: FaultServer, models_dir: Path, mode: str, category: str
) -> None:
    if mode == "refused":
        fault.stop()
    else:
        fault.mode = mode

    async def main() -> tuple[str, list[AvailabilityChanged], float]:
        cloud = OpenAILLM(Endpoint("openai", fault.base_url, "sk-x"), "m", "openai/m", timeout_s=10)
        llm = FallbackLLM([cloud, local_llm(models_dir)], options=FallbackOptions(deadline_s=1.5))
        events: list[AvailabilityChanged] = []
        llm.on_availability.connect(events.append)
        started = time.monotonic()
        text = "".join([p async for p in llm.stream(HI, LLMOptions(max_tokens=16))])
        took = time.monotonic() - started
        await llm.aclose()
        return text, events, took

    text, events, took = asyncio.run(main())
    assert text.strip()
    assert [(e.provider, e.available, e.reason) for e in events] == [("openai/m", False, category)]
    assert took < 5.0  # the deadline, not the client's 10 s timeout


def test_a_stream_cut_half_way_keeps_what_was_said_and_does_not_switch(fault: FaultServer, models_dir: Path) -> None:
    fault.mode = "cut"

    async def main() -> tuple[str, dict[str, bool]]:
        cloud = OpenAILLM(Endpoint("openai", fault.base_url, None), "m", "openai/m")
        llm = FallbackLLM([cloud, local_llm(models_dir)])
        text = "".join([p async for p in llm.stream(HI, LLMOptions(max_tokens=16))])
        status = llm.status()
        await llm.aclose()
        return text, status

    text, status = asyncio.run(main())
    assert text == "Hello from"  # the cloud's first two words, and nothing from local after them
    assert status == {"openai/m": False, "local/smollm2-135m": True}


def test_the_network_disappearing_mid_conversation(fault: FaultServer, models_dir: Path) -> None:
    async def main() -> list[tuple[str, int, float]]:
        cloud = OpenAILLM(Endpoint("openai", fault.base_url, None), "m", "openai/m")
        connectivity = Connectivity(probe_initial_s=0.5, probe_max_s=1.0)
        llm = FallbackLLM(
            [local_llm(models_dir), cloud],
            policy="cloud-first",
            connectivity=connectivity,
            options=FallbackOptions(deadline_s=2.0, probe_initial_s=0.5, probe_max_s=1.0),
        )
        turns: list[tuple[str, int, float]] = []

        async def turn() -> None:
            started = time.monotonic()
            _ = [p async for p in llm.stream(HI, LLMOptions(max_tokens=8))]
            turns.append((llm.descriptor, len(fault.requests), time.monotonic() - started))

        await turn()  # online: the cloud answers
        fault.stop()
        await turn()  # refused: offline, local answers
        await turn()  # offline: the cloud is not even tried
        fault.restart()
        for _ in range(40):
            if connectivity.online and llm.status()["openai/m"]:
                break
            await asyncio.sleep(0.25)
        await turn()  # back online: the cloud again
        await llm.aclose()
        return turns

    turns = asyncio.run(main())
    assert [t[0] for t in turns] == ["openai/m", "local/smollm2-135m", "local/smollm2-135m", "openai/m"]
    assert turns[2][1] == turns[1][1]  # no request reached the cloud while offline


def test_cloud_stt_and_tts_fall_back_to_local_engines(fault: FaultServer, models_dir: Path) -> None:
    question = resample(read_wav(DATA / "questions" / "q02.wav"), ENGINE_RATE)

    async def main() -> tuple[str, str, int, str, int]:
        endpoint = Endpoint("openai", fault.base_url, None)
        stt = FallbackSTT([OpenAISTT(endpoint, "whisper-1", "openai/whisper-1"), whisper(models_dir)])
        fault.mode = "ok"
        cloud_text = (await stt.transcribe(question.samples)).text
        fault.mode = "status:503"
        local_text = (await stt.transcribe(question.samples)).text
        voice = models_dir / "piper-joe-medium"
        piper = PiperTTS(voice / "en_US-joe-medium.onnx", voice / "en_US-joe-medium.onnx.json", threads=1)
        tts = FallbackTTS([OpenAITTS(endpoint, "tts-1", "alloy", "openai/tts-1:alloy"), piper])
        fault.mode = "ok"
        cloud_rates = [c.sample_rate async for c in tts.synthesize("Hello.")]
        cloud_name = tts.descriptor
        fault.mode = "status:401"
        local_rates = [c.sample_rate async for c in tts.synthesize("Hello.")]
        return cloud_text, local_text, cloud_rates[0], cloud_name + " " + tts.descriptor, local_rates[0]

    cloud_text, local_text, cloud_rate, names, local_rate = asyncio.run(main())
    assert cloud_text == "Hello from the cloud."
    assert "days" in local_text.lower() and "week" in local_text.lower()
    assert (cloud_rate, local_rate) == (24_000, 22_050)
    assert names == "openai/tts-1:alloy local/piper-joe-medium"


def test_a_missing_secret_leaves_the_cloud_out_and_the_device_answers_locally(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "cloud.toml").write_text(
        '[llm]\nprovider = ["openai/gpt-4o-mini", "local/smollm2-135m"]\n'
        '[providers.openai]\napi_key = "env:NOT_SET_ANYWHERE"\n'
    )
    write_wav(tmp_path / "in.wav", join(silence(0.5), read_wav(DATA / "questions" / "q04.wav"), silence(1.0)))
    result = cli("run", "--config", "cloud.toml", "--input", "in.wav", "--output", "out.wav", "--json", "--fast")
    assert result.code == 0, result.stderr
    assert "environment variable NOT_SET_ANYWHERE is not set" in result.stderr
    (record,) = result.records()
    assert record["providers"]["llm"] == "local/smollm2-135m"


def test_the_effective_config_shows_secret_references_but_never_values(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[providers.groq]\nbase_url = "https://example.invalid/v1"\napi_key = "gsk-inline"\n'
        '[providers.openai]\napi_key = "env:OPENAI_API_KEY"\n'
    )
    result = cli("config", "--config", "c.toml", env={"OPENAI_API_KEY": "sk-from-env"})
    assert result.code == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["providers"]["groq"]["api_key"] == "<redacted>"
    assert config["providers"]["openai"]["api_key"] == "env:OPENAI_API_KEY"
    assert "gsk-inline" not in result.stdout and "sk-from-env" not in result.stdout
