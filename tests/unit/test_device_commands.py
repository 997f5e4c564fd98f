"""Device commands over a conversation, as the fleet sends them (through the command router)."""

from __future__ import annotations

import json
from collections import Counter

from appliance.config import load_config
from appliance.control import Control
from appliance.fleet.device_commands import DeviceCommands
from tests.unit.test_call_manager import Box


async def test_a_flood_of_says_is_bounded_and_answered_busy_never_failed() -> None:
    box = Box(with_device=True)
    commands = DeviceCommands(load_config(environ={}), Control(box.primary, calls=box.calls), lambda: None)
    router = commands.router()
    replies = [await router.handle("say", json.dumps({"id": f"s{i}", "text": "Dinner is ready."}).encode())
               for i in range(30)]  # fmt: skip
    outcomes = Counter("ok" if r["ok"] else r["error"]["code"] for r in replies)
    assert outcomes["ok"] >= 10 and outcomes["busy"] == 30 - outcomes["ok"], outcomes
    assert set(outcomes) == {"ok", "busy"}
    assert (await router.handle("stop", b'{"id": "halt"}'))["ok"]
    again = await router.handle("say", b'{"id": "after", "text": "Hello."}')
    assert again["ok"] and again["result"]["ahead"] == 0  # stop dropped what was waiting
    await box.calls.aclose()
    await box.primary.aclose()


async def test_a_handoff_to_an_agent_nobody_installed_names_it_and_the_known_ones_and_changes_nothing() -> None:
    box = Box(with_device=True)
    router = DeviceCommands(load_config(environ={}), Control(box.primary, calls=box.calls), lambda: None).router()
    before = box.primary.agent.name
    reply = await router.handle("handoff", b'{"id": "h1", "to": "agent:nobody"}')
    assert reply["ok"] is False and reply["error"]["code"] == "unknown_agent", reply
    message = reply["error"]["message"]
    assert message.startswith("unknown agent 'nobody' (known: ") and "assistant, chat, chef" in message
    assert "import path" not in message and "\n" not in message  # the fleet may not name import paths
    assert box.primary.agent.name == before
    moved = await router.handle("handoff", b'{"id": "h2", "to": "agent:chef"}')
    assert moved["ok"] and moved["result"] == {"agent": "chef"} and box.primary.agent.name == "chef", moved
    await box.calls.aclose()
    await box.primary.aclose()
