"""The device on a real Mosquitto broker: presence, will, commands, errors, bursts, reconnects."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.system.lifecycle import EXIT_RESTART
from tests.integration.broker import Broker, collect, mosquitto, rr

DEVICE = "kitchen-1"


@pytest.fixture
def broker() -> Iterator[Broker]:
    with mosquitto() as broker:
        yield broker


class HeadlessDevice:
    """`appliance run` with no microphone and MQTT on, as a subprocess."""

    def __init__(
        self, broker: Broker, models_dir: Path, tmp_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        env = {
            **os.environ,
            "APPLIANCE_MODELS__DIR": str(models_dir),
            "APPLIANCE_AUDIO__INPUT": "none",
            "APPLIANCE_MQTT__ENABLED": "true",
            "APPLIANCE_MQTT__HOST": "127.0.0.1",
            "APPLIANCE_MQTT__PORT": str(broker.port),
            "APPLIANCE_MQTT__DEVICE_ID": DEVICE,
            "APPLIANCE_MQTT__GROUP": "home",
            "APPLIANCE_MQTT__KEEPALIVE_S": "2",
            "APPLIANCE_MQTT__TELEMETRY_INTERVAL_S": "1",
            "APPLIANCE_STATE__DIR": str(tmp_path / "state"),
            **(extra_env or {}),
        }
        self.err = tmp_path / "device.err"
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "run"], env=env, stderr=self.err.open("w"))

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.err.read_text():
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, f"no {text!r}: {self.err.read_text()}"
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def device(broker: Broker, models_dir: Path, tmp_path: Path) -> Iterator[HeadlessDevice]:
    device = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        device.wait_for("mqtt: connected")
        yield device
    finally:
        device.close()


def status(broker: Broker, timeout: float = 20.0) -> dict[str, Any]:
    return asyncio.run(collect(broker, f"appliance/{DEVICE}/status", 1, timeout))[0]


def test_the_device_announces_itself_and_reports_telemetry(broker: Broker, device: HeadlessDevice) -> None:
    online = status(broker)
    assert online["state"] == "online" and online["version"] and online["config_version"] == 0
    (telemetry,) = asyncio.run(collect(broker, f"appliance/{DEVICE}/telemetry", 1))
    assert telemetry["state"] == "headless" and telemetry["rss_mb"] > 50 and "cpu_percent" in telemetry


def test_mosquitto_rr_drives_commands_on_the_device_group_and_fleet_topics(
    broker: Broker, device: HeadlessDevice
) -> None:
    for topic in (f"appliance/{DEVICE}/cmd/ping", "appliance/group/home/cmd/ping", "appliance/all/cmd/ping"):
        reply = rr(broker, topic, json.dumps({"id": topic}))
        assert reply["id"] == topic and reply["ok"] is True and reply["result"]["pong"] is True
    config = rr(broker, f"appliance/{DEVICE}/cmd/config.get", '{"id": "c1"}')
    assert config["result"]["config"]["mqtt"]["device_id"] == DEVICE
    say = rr(broker, f"appliance/{DEVICE}/cmd/say", '{"id": "s1", "text": "hello"}')
    assert say["error"]["code"] == "not_available"  # headless: no speaker


@pytest.mark.parametrize(
    ("command", "payload", "code"),
    [
        ("ping", "this is not json", "bad_json"),
        ("ping", "[1, 2]", "bad_request"),
        ("ping", '{"no": "id"}', "bad_request"),
        ("reboot-the-world", '{"id": "x"}', "unknown_command"),
        ("mute", '{"id": "m", "on": "maybe"}', "bad_request"),
        ("mute", '{"id": "m2", "on": "true"}', "bad_request"),  # strict: a string is not a boolean
        ("ping", json.dumps({"id": "big", "pad": "x" * 70_000}), "too_large"),
        ("handoff", '{"id": "h", "to": "room"}', "bad_request"),  # no LiveKit server configured
    ],
)
def test_bad_commands_get_an_error_reply_and_the_device_keeps_running(
    broker: Broker, device: HeadlessDevice, command: str, payload: str, code: str
) -> None:
    reply = rr(broker, f"appliance/{DEVICE}/cmd/{command}", payload)
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "after"}')["ok"] is True


def test_a_repeated_id_is_answered_from_the_first_result(broker: Broker, device: HeadlessDevice) -> None:
    first = rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "same"}')
    time.sleep(0.3)
    again = rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "same"}')
    assert again == first  # the same uptime: not run twice


def test_a_burst_of_1000_commands_gets_1000_replies(broker: Broker, device: HeadlessDevice) -> None:
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    async def main() -> set[str]:
        replies: set[str] = set()
        async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe("appliance/replies/burst", qos=1)
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = "appliance/replies/burst"
            for index in range(1000):
                await client.publish(
                    f"appliance/{DEVICE}/cmd/ping", json.dumps({"id": f"b{index}"}), qos=1, properties=properties
                )
            async with asyncio.timeout(60):
                async for message in client.messages:
                    reply = json.loads(bytes(message.payload))
                    assert reply["ok"] is True
                    replies.add(reply["id"])
                    if len(replies) == 1000:
                        break
        return replies

    assert asyncio.run(main()) == {f"b{i}" for i in range(1000)}


def test_a_command_without_a_response_topic_is_answered_on_the_events_topic(
    broker: Broker, device: HeadlessDevice
) -> None:
    async def main() -> dict[str, Any]:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V311) as client:
            await client.subscribe(f"appliance/{DEVICE}/events", qos=1)
            await client.publish(f"appliance/{DEVICE}/cmd/nope", '{"id": "v3"}', qos=1)
            async with asyncio.timeout(10):
                async for message in client.messages:
                    event = json.loads(bytes(message.payload))
                    if event.get("type") == "command_reply":
                        return event  # type: ignore[no-any-return]
        raise AssertionError("no reply event")

    event = asyncio.run(main())
    assert event["command"] == "nope" and event["reply"]["error"]["code"] == "unknown_command"


def test_kill_9_shows_offline_through_the_will(broker: Broker, device: HeadlessDevice) -> None:
    assert status(broker)["state"] == "online"
    started = time.monotonic()
    device.proc.send_signal(signal.SIGKILL)
    device.proc.wait(10)

    async def offline() -> float:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe(f"appliance/{DEVICE}/status", qos=1)
            async with asyncio.timeout(15):
                async for message in client.messages:
                    if json.loads(bytes(message.payload))["state"] == "offline":
                        return time.monotonic() - started
        raise AssertionError("no offline status")

    assert asyncio.run(offline()) < 8.0  # keepalive 2 s: the broker gives up after 1.5x


def test_a_restart_command_says_offline_and_exits_with_the_status_the_unit_restarts_on(
    broker: Broker, device: HeadlessDevice
) -> None:
    reply = rr(broker, f"appliance/{DEVICE}/cmd/restart", '{"id": "r1"}')
    assert reply["result"] == {"restarting": True}
    assert device.proc.wait(20) == EXIT_RESTART  # systemd/appliance.service: RestartForceExitStatus=75
    assert status(broker)["state"] == "offline"


def test_after_a_broker_restart_the_device_reconnects_and_announces_itself(
    broker: Broker, device: HeadlessDevice
) -> None:
    assert status(broker)["state"] == "online"
    broker.stop()
    device.wait_for("mqtt: disconnected")
    broker.start()  # same port; no persistence: the retained status is gone until the device re-announces
    assert status(broker, timeout=40)["state"] == "online"
    assert rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "back"}')["ok"] is True


def test_config_set_is_versioned_validated_saved_and_survives_a_restart(
    broker: Broker, models_dir: Path, tmp_path: Path, device: HeadlessDevice
) -> None:
    topic = f"appliance/{DEVICE}/cmd/config.set"
    ok = rr(broker, topic, json.dumps({"id": "c1", "version": 1, "patch": {"endpointing": {"min_silence_ms": 420}}}))
    assert ok["ok"] is True and ok["result"]["version"] == 1, ok
    assert "endpointing.min_silence_ms" in ok["result"]["applied"]  # headless too: the conversation calls use follows
    stale = rr(broker, topic, json.dumps({"id": "c2", "version": 1, "patch": {"audio": {"volume": 10}}}))
    assert stale["error"]["code"] == "stale_version"
    bad = rr(
        broker, topic, json.dumps({"id": "c3", "version": 2, "patch": {"endpointing": {"min_silence_ms": "soon"}}})
    )
    assert bad["error"]["code"] == "bad_config" and "endpointing.min_silence_ms" in bad["error"]["message"]
    unknown = rr(broker, topic, json.dumps({"id": "c4", "version": 2, "patch": {"endpointing": {"min_silense": 1}}}))
    assert unknown["error"]["code"] == "bad_config" and "min_silense" in unknown["error"]["message"]
    reported = asyncio.run(collect(broker, f"appliance/{DEVICE}/config/reported", 1))[0]
    assert reported["version"] == 1 and reported["config"]["endpointing"]["min_silence_ms"] == 420
    assert status(broker)["config_version"] == 1

    device.close()  # and a new process on the same state directory
    again = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        again.wait_for("mqtt: connected")
        got = rr(broker, f"appliance/{DEVICE}/cmd/config.get", '{"id": "g1"}')["result"]
        assert got["version"] == 1 and got["config"]["endpointing"]["min_silence_ms"] == 420
    finally:
        again.close()


def test_home_assistant_discovery_is_published_and_resent_when_home_assistant_comes_online(
    broker: Broker, device: HeadlessDevice
) -> None:
    topic = f"homeassistant/device/{DEVICE}/config"
    (first,) = asyncio.run(collect(broker, topic, 1))
    components = first["cmps"]
    # Headless: nothing of its own to mute or turn up.
    assert {c["p"] for c in components.values()} == {"sensor", "select", "button", "update"}
    assert all("default_entity_id" in c and "object_id" not in c for c in components.values())
    assert first["avty_t"] == f"appliance/{DEVICE}/status"
    assert {"assistant", "chef", "chat"} <= set(components["agent"]["options"])  # chef: reachable by handoff

    async def resent() -> dict[str, Any]:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe(topic, qos=1)
            async with asyncio.timeout(10):
                async for _ in client.messages:  # the retained copy
                    break
                await client.publish("homeassistant/status", "online", qos=1)
                async for message in client.messages:
                    return json.loads(bytes(message.payload))  # type: ignore[no-any-return]
        raise AssertionError("discovery was not sent again")

    assert asyncio.run(resent())["dev"]["ids"] == [f"appliance-{DEVICE}"]


def fleet(broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "fleet", "--broker", f"127.0.0.1:{broker.port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_fleet_command_lists_reads_changes_and_commands_devices(broker: Broker, device: HeadlessDevice) -> None:
    listing = fleet(broker, "--json", "ls")
    assert listing.returncode == 0, listing.stderr
    (row,) = [json.loads(line) for line in listing.stdout.splitlines()]
    assert row["id"] == DEVICE and row["state"] == "online" and row["group"] == "home"
    table = fleet(broker, "ls")
    assert DEVICE in table.stdout and "online" in table.stdout

    ping = fleet(broker, "--json", "cmd", "group:home", "ping")
    assert ping.returncode == 0, ping.stderr
    (reply,) = [json.loads(line) for line in ping.stdout.splitlines()]
    assert reply["device"] == DEVICE and reply["result"]["pong"] is True

    changed = fleet(broker, "set", DEVICE, "endpointing.min_silence_ms=450", "agent.name=chat")
    assert changed.returncode == 0, changed.stderr + changed.stdout
    assert "desired config of kitchen-1 is now version 1" in changed.stderr
    view = json.loads(fleet(broker, "get", DEVICE).stdout)
    assert view["desired"] == {
        "versions": {"device": 1},
        "patch": {"endpointing": {"min_silence_ms": 450}, "agent": {"name": "chat"}},
    }
    assert view["reported"]["versions"] == {"device": 1} and view["in_sync"] and view["differing"] == []
    assert view["config"]["endpointing"]["min_silence_ms"] == 450 and view["config"]["agent"]["name"] == "chat"

    refused = fleet(broker, "cmd", DEVICE, "mute", '{"on": "loud"}')
    assert refused.returncode == 1 and "bad_request" in refused.stdout
    nobody = fleet(broker, "--timeout", "1", "cmd", "no-such-device", "ping")
    assert nobody.returncode == 1 and "no reply within 1 s from no-such-device" in nobody.stderr

    # A box the broker still shows online (its will has not fired yet) that does not answer: named, exit 1.
    ghost = ["mosquitto_pub", "-p", str(broker.port), "-t", "appliance/ghost-1/status", "-r"]
    subprocess.run([*ghost, "-m", '{"state": "online", "group": "home"}'], check=True, timeout=10)
    try:
        partial = fleet(broker, "--timeout", "2", "--json", "cmd", "group:home", "ping")
        assert partial.returncode == 1 and "no reply within 2 s from ghost-1" in partial.stderr, partial.stderr
        assert [json.loads(line)["device"] for line in partial.stdout.splitlines()] == [DEVICE]
    finally:
        subprocess.run([*ghost, "-n"], check=True, timeout=10)


def test_tls_with_passwords_admits_the_device_and_refuses_strangers(models_dir: Path, tmp_path: Path) -> None:
    import aiomqtt

    from tests.integration.broker import PASSWORD, USER

    with mosquitto(secure=True) as broker:
        env = {
            "APPLIANCE_MQTT__TLS_CA": str(broker.ca),
            "APPLIANCE_MQTT__USERNAME": USER,
            "APPLIANCE_MQTT__PASSWORD": '"env:TEST_MQTT_PASSWORD"',
            "TEST_MQTT_PASSWORD": PASSWORD,
        }
        device = HeadlessDevice(broker, models_dir, tmp_path, extra_env=env)
        try:
            device.wait_for("mqtt: connected")

            async def ping(password: str) -> dict[str, Any]:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                tls = aiomqtt.TLSParameters(ca_certs=str(broker.ca))
                async with aiomqtt.Client(
                    "127.0.0.1",
                    broker.port,
                    username=USER,
                    password=password,
                    tls_params=tls,
                    protocol=aiomqtt.ProtocolVersion.V5,
                ) as client:
                    await client.subscribe("appliance/replies/tls", qos=1)
                    properties = Properties(PacketTypes.PUBLISH)
                    properties.ResponseTopic = "appliance/replies/tls"
                    await client.publish(f"appliance/{DEVICE}/cmd/ping", '{"id": "t1"}', qos=1, properties=properties)
                    async with asyncio.timeout(10):
                        async for message in client.messages:
                            return json.loads(bytes(message.payload))  # type: ignore[no-any-return]
                raise AssertionError("no reply")

            assert asyncio.run(ping(PASSWORD))["ok"] is True
            with pytest.raises(aiomqtt.MqttError):
                asyncio.run(ping("wrong"))
            assert PASSWORD not in device.err.read_text()
        finally:
            device.close()


def test_a_device_with_a_wrong_password_keeps_retrying_without_crashing(models_dir: Path, tmp_path: Path) -> None:
    with mosquitto(secure=True) as broker:
        env = {
            "APPLIANCE_MQTT__TLS_CA": str(broker.ca),
            "APPLIANCE_MQTT__USERNAME": "device",
            "APPLIANCE_MQTT__PASSWORD": "nope",
        }
        device = HeadlessDevice(broker, models_dir, tmp_path, extra_env=env)
        try:
            device.wait_for("mqtt: disconnected")
            time.sleep(2.5)
            assert device.proc.poll() is None
            assert device.err.read_text().count("mqtt: disconnected") >= 2
        finally:
            device.close()


def test_a_spoken_turn_is_published_as_an_event_without_transcripts_by_default(
    broker: Broker, models_dir: Path
) -> None:
    from appliance.audio.wav import read_wav
    from tests.fakes import silence
    from tests.integration.app_process import Appliance
    from tests.integration.conftest import DATA
    from tests.integration.pulse_rig import pulse_rig

    async def first_turn_event() -> dict[str, Any]:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe(f"appliance/{DEVICE}/events", qos=1)
            ready.set()
            async with asyncio.timeout(60):
                async for message in client.messages:
                    event = json.loads(bytes(message.payload))
                    if event.get("type") == "turn":
                        return event  # type: ignore[no-any-return]
        raise AssertionError("no turn event")

    ready = asyncio.Event()
    env = {
        "APPLIANCE_MQTT__ENABLED": "true",
        "APPLIANCE_MQTT__HOST": "127.0.0.1",
        "APPLIANCE_MQTT__PORT": str(broker.port),
        "APPLIANCE_MQTT__DEVICE_ID": DEVICE,
    }
    with pulse_rig() as rig:
        app = Appliance(rig, models_dir, env=env)
        try:
            app.wait_for("sound device: streaming")
            app.wait_for("mqtt: connected")

            async def main() -> dict[str, Any]:
                listening = asyncio.create_task(first_turn_event())
                await ready.wait()
                rig.say(silence(0.5))
                rig.say(read_wav(DATA / "questions" / "q04.wav"))
                return await listening

            event = asyncio.run(main())
        finally:
            app.stop()
    assert event["turn"] == 1 and event["latency_ms"]["voice_to_voice"] is not None
    assert "user_text" not in event and "agent_text" not in event  # privacy.publish_transcripts is off


def test_a_retained_command_is_ignored_with_an_error_so_a_retained_restart_cannot_loop(
    broker: Broker, models_dir: Path, tmp_path: Path
) -> None:
    topic = f"appliance/{DEVICE}/cmd/restart"
    pub = ["mosquitto_pub", "-p", str(broker.port), "-V", "5", "-t", topic, "-r"]
    subprocess.run([*pub, "-m", '{"id": "loop"}'], check=True, timeout=10)
    device = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        device.wait_for("retained command restart ignored")
        time.sleep(1.0)
        assert device.proc.poll() is None, device.err.read_text()  # still running: nothing restarted it
        assert rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "alive"}')["ok"] is True
    finally:
        subprocess.run([*pub, "-n"], check=True, timeout=10)  # clear the retained message
        device.close()


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"agent": {"name": "nonexistent"}}, "unknown agent 'nonexistent'"),
        ({"vad": {"provider": "local/nope"}}, "vad provider 'local/nope' is unknown"),
        ({"llm": {"provider": "acme/big-model"}}, "[providers.acme] base_url"),
    ],
)
def test_a_config_the_device_could_not_start_with_is_refused_not_saved_for_the_next_start(
    broker: Broker, device: HeadlessDevice, patch: dict[str, Any], named: str
) -> None:
    topic = f"appliance/{DEVICE}/cmd/config.set"
    refused = rr(broker, topic, json.dumps({"id": "bad", "version": 1, "patch": patch}))
    assert refused["ok"] is False and refused["error"]["code"] == "bad_config", refused
    assert named in refused["error"]["message"], refused
    fine = rr(broker, topic, json.dumps({"id": "fine", "version": 1, "patch": {"audio": {"volume": 50}}}))
    assert fine["ok"] is True, fine  # nothing of the refused change was kept: version 1 is still free


@pytest.mark.parametrize(
    "patch",
    [
        {"mqtt": {"host": "evil.example.com"}},
        {"mqtt": {"password": "file:/etc/shadow"}},
        {"providers": {"acme": {"base_url": "https://evil.example.com/v1"}}},
        {"fleet": {"remote_keys": ["mqtt"]}},
    ],
)
def test_the_fleet_cannot_redirect_the_device_or_point_a_secret_at_a_local_file(
    broker: Broker, device: HeadlessDevice, patch: dict[str, Any]
) -> None:
    reply = rr(broker, f"appliance/{DEVICE}/cmd/config.set", json.dumps({"id": "x", "version": 1, "patch": patch}))
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden_key", reply
    assert rr(broker, f"appliance/{DEVICE}/cmd/config.set",
              json.dumps({"id": "y", "version": 1, "patch": {"audio": {"volume": 40}}}))["ok"] is True  # fmt: skip


def test_the_retained_state_topic_follows_every_change_for_home_assistant(
    broker: Broker, device: HeadlessDevice
) -> None:
    topic = f"appliance/{DEVICE}/state"
    first = asyncio.run(collect(broker, topic, 1))[0]  # retained: a late subscriber gets it at once
    assert first["state"] == "headless" and first["sound_device"] == "none" and first["rooms"] == []
    assert first["volume"] == 100 and first["muted"] is False and first["agent"] == "assistant"
    changed = rr(broker, f"appliance/{DEVICE}/cmd/config.set",
                 json.dumps({"id": "v", "version": 1, "patch": {"audio": {"volume": 35}}}))  # fmt: skip
    assert changed["ok"] is True, changed
    deadline = time.monotonic() + 5
    while (now := asyncio.run(collect(broker, topic, 1))[0])["volume"] != 35:
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    assert now["ts"] > first["ts"]
