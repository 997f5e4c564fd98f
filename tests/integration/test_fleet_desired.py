"""Desired state, reply topics, a stalled broker and decommissioning, on a real Mosquitto with a real device."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import Broker, collect, mosquitto, rr
from tests.integration.test_fleet import DEVICE, HeadlessDevice, fleet


@pytest.fixture
def broker() -> Iterator[Broker]:
    with mosquitto() as broker:
        yield broker


@pytest.fixture
def device(broker: Broker, models_dir: Path, tmp_path: Path) -> Iterator[HeadlessDevice]:
    device = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        device.wait_for("mqtt: connected")
        yield device
    finally:
        device.close()


def view(broker: Broker) -> dict[str, Any]:
    got = fleet(broker, "get", DEVICE)
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)  # type: ignore[no-any-return]


def wait_in_sync(broker: Broker, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        seen = view(broker)
        if seen["in_sync"] and seen["desired"]["versions"]:
            return seen
        assert time.monotonic() < deadline, f"never in sync: {seen}"
        time.sleep(0.5)


def test_a_device_offline_during_fleet_set_comes_up_with_the_change(
    broker: Broker, models_dir: Path, tmp_path: Path
) -> None:
    # No device is running: the operator sets fleet, group and device config all the same.
    for target, *assignments in (
        ("all", "endpointing.min_silence_ms=500", "endpointing.max_silence_ms=2000"),
        ("group:home", "endpointing.min_silence_ms=450"),
        (DEVICE, "agent.name=chat"),
    ):
        done = fleet(broker, "set", target, *assignments)
        assert done.returncode == 0, done.stderr
    second = fleet(broker, "set", "all", "interruption.min_speech_ms=300")
    assert "desired config of all is now version 2" in second.stderr, second.stderr

    device = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        device.wait_for("mqtt: connected")
        seen = wait_in_sync(broker)
        assert seen["reported"]["versions"] == {"all": 2, "group:home": 1, "device": 1}
        config = seen["config"]
        # The narrower scope wins: the group's 450 over the fleet's 500; the fleet's other keys stay.
        assert config["endpointing"] == {**config["endpointing"], "min_silence_ms": 450, "max_silence_ms": 2000}
        assert config["agent"]["name"] == "chat" and config["interruption"]["min_speech_ms"] == 300
        assert seen["differing"] == []

        # Online now: a change is answered by the device at once.
        online = fleet(broker, "--json", "set", DEVICE, "audio.volume=30")
        assert online.returncode == 0, online.stderr
        (reply,) = [json.loads(line) for line in online.stdout.splitlines()]
        assert reply["ok"] and reply["device"] == DEVICE and reply["result"]["applied"] == ["audio.volume"]
        assert reply["result"]["versions"] == {"all": 2, "group:home": 1, "device": 2}
    finally:
        device.close()

    # Restarted, it does not apply the same documents again (the versions were saved with the config).
    again = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        again.wait_for("mqtt: connected")
        time.sleep(2)
        assert "desired config" not in again.err.read_text().split("mqtt: connected")[-1]
        assert wait_in_sync(broker)["config"]["audio"]["volume"] == 30
    finally:
        again.close()


def test_a_desired_config_the_device_cannot_take_is_refused_reported_and_changes_nothing(
    broker: Broker, device: HeadlessDevice
) -> None:
    refused = fleet(broker, "--json", "set", DEVICE, "agent.name=nonexistent")
    assert refused.returncode == 1
    (reply,) = [json.loads(line) for line in refused.stdout.splitlines()]
    assert reply["error"]["code"] == "bad_config" and "nonexistent" in reply["error"]["message"]
    seen = view(broker)
    assert not seen["in_sync"] and seen["config"]["agent"]["name"] == "assistant"
    assert seen["reported"]["error"]["code"] == "bad_config" and seen["differing"] == ["agent.name"]

    forbidden = fleet(broker, "--json", "set", "all", "mqtt.host=evil.example")
    (reply,) = [json.loads(line) for line in forbidden.stdout.splitlines()]
    assert forbidden.returncode == 1 and reply["error"]["code"] == "forbidden_key"
    assert rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "alive"}')["ok"] is True


def test_replies_go_only_to_response_topics_under_the_reply_prefix(broker: Broker, device: HeadlessDevice) -> None:
    """A sender must not make the device publish on a topic of the sender's choice (its own status, say)."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    async def main() -> tuple[list[str], dict[str, Any]]:
        hijacked: list[str] = []
        async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe("elsewhere/#", qos=1)
            await client.subscribe(f"appliance/{DEVICE}/events", qos=1)
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = "elsewhere/reply"
            await client.publish(f"appliance/{DEVICE}/cmd/ping", '{"id": "hijack"}', qos=1, properties=properties)
            async with asyncio.timeout(10):
                async for message in client.messages:
                    if str(message.topic).startswith("elsewhere/"):
                        hijacked.append(str(message.topic))
                        continue
                    event = json.loads(bytes(message.payload))
                    if event.get("type") == "command_reply":
                        return hijacked, event
        raise AssertionError("no reply event")

    hijacked, event = asyncio.run(main())
    assert hijacked == [] and event["reply"]["id"] == "hijack" and event["reply"]["ok"] is True
    assert rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "fine"}')["ok"] is True  # under the prefix


def test_commands_sent_while_the_broker_stalls_are_all_answered(broker: Broker, device: HeadlessDevice) -> None:
    """The device's session outlives its connection: what was sent to it while it was cut off is kept."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    count = 30
    assert broker.process is not None

    async def main() -> set[str]:
        replies: set[str] = set()
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, keepalive=120
        ) as client:
            await client.subscribe("appliance/replies/stall", qos=1)
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = "appliance/replies/stall"
            os.kill(broker.process.pid, signal.SIGSTOP)
            resume = threading.Timer(8.0, os.kill, (broker.process.pid, signal.SIGCONT))
            resume.start()
            try:
                await asyncio.gather(*(
                    client.publish(f"appliance/{DEVICE}/cmd/ping", json.dumps({"id": f"s{i}"}), qos=1,
                                   properties=properties)
                    for i in range(count)
                ))  # fmt: skip
                async with asyncio.timeout(90):
                    async for message in client.messages:
                        replies.add(json.loads(bytes(message.payload))["id"])
                        if len(replies) == count:
                            break
            finally:
                resume.join()
        return replies

    assert asyncio.run(main()) == {f"s{i}" for i in range(count)}


def test_fleet_ls_shows_the_last_message_and_decommission_clears_a_box(broker: Broker, device: HeadlessDevice) -> None:
    time.sleep(2.5)  # telemetry every second: the newest message is newer than the connect
    (row,) = [json.loads(line) for line in fleet(broker, "--json", "ls").stdout.splitlines()]
    assert row["last_seen"] > row["ts"] and time.time() - row["last_seen"] < 5

    online = fleet(broker, "decommission", DEVICE)
    assert online.returncode == 1 and "is online" in online.stderr
    device.close()  # killed: the will says offline
    fleet(broker, "set", DEVICE, "audio.volume=20")
    gone = fleet(broker, "decommission", DEVICE)
    assert gone.returncode == 0, gone.stderr
    assert fleet(broker, "--json", "ls").stdout.strip() == ""
    left = subprocess.run(
        ["mosquitto_sub", "-p", str(broker.port), "-t", f"appliance/{DEVICE}/#", "-t", "homeassistant/#", "-v",
         "-W", "2"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert left.stdout.strip() == ""


def test_a_saved_config_the_box_cannot_start_with_falls_back_to_the_last_that_ran_and_says_so(
    broker: Broker, models_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    saved = state / "fleet-config.json"
    saved.write_text(json.dumps({"version": 3, "desired": {}, "overrides": {"audio": {"volume": 30}}}))
    first = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        first.wait_for("mqtt: connected")  # it ran with version 3: that is the last config that ran
    finally:
        first.close()
    # Saved later by an older release, or valid until a model was removed: the box cannot start with it.
    saved.write_text(json.dumps({"version": 4, "desired": {}, "overrides": {"agent": {"name": "nonexistent"}}}))

    events: list[dict[str, Any]] = []
    listener = threading.Thread(
        target=lambda: events.extend(asyncio.run(collect(broker, f"appliance/{DEVICE}/events", 1, timeout=60)))
    )
    listener.start()
    time.sleep(1)
    device = HeadlessDevice(broker, models_dir, tmp_path)
    try:
        device.wait_for("mqtt: connected")
        listener.join()
        (event,) = events
        assert event["type"] == "error" and event["code"] == "config_fallback", event
        assert "nonexistent" in event["message"] and "version 3" in event["message"]
        seen = view(broker)
        assert seen["version"] == 3 and seen["config"]["audio"]["volume"] == 30
        assert json.loads((state / "fleet-config.failed.json").read_text())["version"] == 4
        assert rr(broker, f"appliance/{DEVICE}/cmd/ping", '{"id": "back"}')["ok"] is True
    finally:
        device.close()
