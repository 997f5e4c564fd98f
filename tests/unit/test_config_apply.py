"""A new config applied to a live session: what changes now, what waits for a restart."""

from __future__ import annotations

from appliance.agents.builtin.home import HomeAssistant
from appliance.audio.frames import ENGINE_RATE
from appliance.audio.playback import PlaybackQueue
from appliance.config import load_config
from appliance.control import Control
from appliance.fleet.config_apply import apply_config
from appliance.fleet.config_store import ConfigStore, StaleVersionError
from appliance.voice.session import VoiceSession
from appliance.voice.turn_state import Providers
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from tests.virtual_clock import run_virtual


class FakeAppliance:
    """Only what apply_config touches when no provider stage changes."""

    def __init__(self) -> None:
        self.config = load_config(environ={})


def test_endpointing_volume_activation_and_agent_change_live_and_mqtt_waits() -> None:
    old = load_config(environ={})
    new = load_config(
        environ={},
        overrides={
            "endpointing": {"min_silence_ms": 450},
            "audio": {"volume": 40},
            "activation": {"mode": "wake", "pipeline": "auto"},
            "agent": {"name": "chat"},
            "mqtt": {"port": 1884},
        },
    )

    async def main() -> tuple[dict[str, list[str]], VoiceSession]:
        session = VoiceSession(
            Providers(FakeVAD(), FakeSTT(), FakeLLM(), FakeTTS()), HomeAssistant(), PlaybackQueue(ENGINE_RATE)
        )
        control = Control(session, appliance=FakeAppliance())  # type: ignore[arg-type]
        result = await apply_config(old, new, control)
        return result, session

    result, session = run_virtual(main())
    assert session.options.endpointing.min_silence_ms == 450
    assert session.output.volume == 0.4
    assert session.activation.mode.value == "wake"
    assert session.agent.name == "chat"
    assert {"mqtt.port", "activation.pipeline"} <= set(result["restart_required"])  # listeners open at start
    assert {"activation.mode", "endpointing.min_silence_ms", "audio.volume", "agent.name"} <= set(result["applied"])


def test_the_store_refuses_old_versions_and_saves_atomically(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"APPLIANCE_STATE__DIR": str(tmp_path)}
    store = ConfigStore(environ=env)
    store.load()
    config, overrides = store.propose({"audio": {"volume": 30}}, version=3)
    assert config.audio.volume == 30
    store.commit(overrides, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["fleet-config.json"]  # no temporary left behind
    try:
        store.propose({"audio": {"volume": 20}}, version=3)
    except StaleVersionError:
        pass
    else:
        raise AssertionError("an old version was accepted")
    reloaded = ConfigStore(environ=env)
    assert reloaded.load().audio.volume == 30 and reloaded.version == 3
