"""A fleet handoff between installed agents (examples/kitchen's entry points) on a device that really
converses: PortAudio on the PulseAudio rig, a real Mosquitto, the real engines.

The headless side (the select's options, import paths refused) is in test_agent_loading.py; here the
handoff must reach the voice session, so the next spoken turn is answered by the agent it names.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from appliance.audio.wav import read_wav
from tests.fakes import silence
from tests.integration.app_process import Appliance
from tests.integration.broker import Broker, collect, mosquitto, rr
from tests.integration.conftest import DATA
from tests.integration.livekit_rig import DEVICE_IDENTITY, mqtt_env
from tests.integration.pulse_rig import PulseRig, pulse_rig
from tests.integration.test_fleet import fleet


def spoken_turn(rig: PulseRig, app: Appliance, question: str, number: int) -> dict[str, Any]:
    """Play a question into the microphone; the turn record `appliance run --json` prints for it."""
    rig.say(read_wav(DATA / "questions" / f"{question}.wav"))
    app.wait_for(f'"turn": {number}', timeout=90)
    return json.loads(app.out.read_text().splitlines()[number - 1])  # type: ignore[no-any-return]


def agent_on_the_state_topic(broker: Broker, wanted: str) -> None:
    """What Home Assistant's agent select shows (`value_json.agent` of the retained state topic)."""
    deadline = time.monotonic() + 10
    while (state := asyncio.run(collect(broker, f"appliance/{DEVICE_IDENTITY}/state", 1))[0])["agent"] != wanted:
        assert time.monotonic() < deadline, state
        time.sleep(0.3)


def test_a_fleet_handoff_moves_the_spoken_conversation_between_installed_agents(models_dir: Path) -> None:
    with mosquitto() as broker, pulse_rig() as rig:
        env = {
            **mqtt_env(broker.port),
            "APPLIANCE_AGENT__NAME": "kitchen",
            "APPLIANCE_STATE__DIR": str(rig.root / "state"),
            "APPLIANCE_LLM__MAX_TOKENS": "24",  # one short sentence is proof enough of who answered
        }
        app = Appliance(rig, models_dir, env=env)
        app.wait_for("sound device: streaming")
        app.wait_for("mqtt: connected")
        rig.say(silence(0.5))

        # Home Assistant's agent select on this device: the plugin agents are offered, and choosing one
        # sends exactly what its command template makes.
        (discovery,) = asyncio.run(collect(broker, f"homeassistant/device/{DEVICE_IDENTITY}/config", 1))
        select = discovery["cmps"]["agent"]
        assert {"kitchen", "recipes"} <= set(select["options"]), select
        agent_on_the_state_topic(broker, "kitchen")
        chosen = select["cmd_tpl"].replace("{{ now().timestamp() }}", "1").replace("{{ value }}", "recipes")
        reply = rr(broker, select["cmd_t"], chosen)
        assert reply == {"id": "ha-1", "ok": True, "result": {"agent": "recipes"}, "device": DEVICE_IDENTITY}, reply
        agent_on_the_state_topic(broker, "recipes")
        tea = spoken_turn(rig, app, "q09", 1)  # "How do I make a cup of tea?"
        assert tea["agent"] == "recipes" and tea["tool_calls"] == [], tea  # answered by it, not handed back

        # The operator's CLI hands it back; the next turn is the kitchen's.
        back = fleet(broker, "--json", "cmd", DEVICE_IDENTITY, "handoff", '{"to": "agent:kitchen"}')
        assert back.returncode == 0, back.stdout + back.stderr
        assert json.loads(back.stdout)["result"] == {"agent": "kitchen"}
        assert spoken_turn(rig, app, "q04", 2)["agent"] == "kitchen"  # "What is two plus two?"

        # An agent nobody installed: a one-line error that names it and the ones there are.
        nobody = fleet(broker, "--json", "cmd", DEVICE_IDENTITY, "handoff", '{"to": "agent:nobody"}')
        error = json.loads(nobody.stdout)["error"]
        assert nobody.returncode == 1 and error["code"] == "unknown_agent", nobody.stdout
        assert error["message"].startswith("unknown agent 'nobody' (known: assistant, chat, chef, kitchen, recipes")
        agent_on_the_state_topic(broker, "kitchen")  # the conversation stayed where it was
        assert app.stop() == 0
