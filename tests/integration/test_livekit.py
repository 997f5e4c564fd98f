"""Remote calls through a real LiveKit server: a caller talks with the agent over WebRTC."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frames import ENGINE_RATE, AudioChunk
from appliance.audio.wav import read_wav
from appliance.bench.livekit_peer import RoomPeer, mint_token
from appliance.bench.livekit_server import API_KEY, API_SECRET, LocalLiveKitServer
from tests.fakes import silence
from tests.integration.app_process import Appliance
from tests.integration.broker import collect, mosquitto, rr
from tests.integration.conftest import DATA
from tests.integration.fault_server import FaultServer
from tests.integration.livekit_rig import (
    DEVICE_IDENTITY,
    HeadlessAppliance,
    caller,
    livekit,
    livekit_env,
    mqtt_env,
    wait_until,
)
from tests.integration.pulse_rig import pulse_rig
from tests.integration.speech_check import audible, overlap, transcribe

__all__ = ["livekit"]


def question(name: str) -> np.ndarray:
    return read_wav(DATA / "questions" / f"{name}.wav").samples


def test_a_remote_caller_asks_and_hears_the_answer(
    livekit: LocalLiveKitServer, models_dir: Path, tmp_path: Path
) -> None:
    device = HeadlessAppliance(models_dir, tmp_path, livekit_env(livekit, APPLIANCE_LIVEKIT__AUTO_JOIN="true"))
    try:
        device.wait_for("livekit: kitchen: joined")

        async def call() -> tuple[str, str, list[str], list[str]]:
            peer = await caller(livekit)
            try:
                await wait_until(lambda: "caller_joined identity=caller-1" in device.log(), what="the caller")
                await asyncio.sleep(0.5)
                spoken_until = peer.say(question("q02"))
                await wait_until(lambda: "agent: " in device.log(), timeout=30, what="a reply")
                await asyncio.sleep(4.0)
                heard = AudioChunk(peer.recording(since=spoken_until), ENGINE_RATE)
                return transcribe(models_dir, heard), device.log(), peer.captions, peer.agent_states
            finally:
                await peer.leave()

        heard, log, captions, states = asyncio.run(call())
        # What LiveKit's own frontends show: the agent's state and captions of both sides.
        assert states[:3] == ["thinking", "speaking", "listening"], states
        assert overlap("How many days are in a week?", captions[0]) >= 0.8, captions
        you = next(line for line in log.splitlines() if line.startswith("you:"))
        agent = next(line for line in log.splitlines() if line.startswith("agent:"))
        assert overlap("How many days are in a week?", you) >= 0.8, you
        assert overlap(agent.removeprefix("agent:"), heard) >= 0.6, (agent, heard)
        assert overlap(agent.removeprefix("agent:"), " ".join(captions[1:])) == 1.0, (agent, captions)
        device.wait_for("caller_left identity=caller-1")
        assert device.stop() == 0
    finally:
        device.stop()


def test_handoff_moves_the_device_conversation_to_a_room_an_operator_takes_over_and_it_comes_back(
    livekit: LocalLiveKitServer, models_dir: Path
) -> None:
    with mosquitto() as broker, pulse_rig() as rig:
        env = {
            **livekit_env(livekit),
            **mqtt_env(broker.port),
            "APPLIANCE_STATE__DIR": str(rig.root / "state"),
            "APPLIANCE_MQTT__TELEMETRY_INTERVAL_S": "1",
        }
        app = Appliance(rig, models_dir, env=env)
        try:
            app.wait_for("sound device: streaming")
            app.wait_for("mqtt: connected")
            # 1. A local turn on the device.
            rig.say(silence(0.5))
            rig.say(read_wav(DATA / "questions" / "q01.wav"))
            app.wait_for('"turn": 1')
            time.sleep(3.0)

            def command(name: str, **args: object) -> dict[str, object]:
                payload = json.dumps({"id": f"{name}-{time.monotonic()}", **args})
                return rr(broker, f"appliance/{DEVICE_IDENTITY}/cmd/{name}", payload)

            async def call() -> None:
                # 2. Into the room: the same conversation (its turn count goes on), heard by the caller only.
                reply = command("handoff", to="room")
                assert reply["ok"] is True and reply["result"]["room"] == "kitchen", reply
                peer = await caller(livekit)
                try:
                    app.wait_for("caller_joined identity=caller-1")
                    speaker_before = len(rig.speaker())
                    await asyncio.sleep(0.5)
                    spoken_until = peer.say(question("q02"))
                    await wait_until(lambda: '"turn": 2' in app.out.read_text(), what="turn 2 in the room")
                    await asyncio.sleep(4.0)
                    record = json.loads(app.out.read_text().splitlines()[1])
                    assert overlap("how many days are in a week", record["user_text"]) >= 0.8, record
                    heard = transcribe(models_dir, AudioChunk(peer.recording(spoken_until), ENGINE_RATE))
                    assert overlap(record["agent_text"], heard) >= 0.6, (record["agent_text"], heard)
                    assert not audible(AudioChunk(rig.speaker().samples[speaker_before:], ENGINE_RATE), 0, 1e9)
                    (telemetry,) = await collect(broker, f"appliance/{DEVICE_IDENTITY}/telemetry", 1)
                    assert telemetry["calls"] == [
                        {
                            "room": "kitchen",
                            "identity": DEVICE_IDENTITY,
                            "status": "connected",
                            "caller": "caller-1",
                            "conversation": "device",
                            "participants": ["caller-1"],
                        }
                    ], telemetry
                    # The device's microphone no longer feeds the conversation.
                    rig.say(read_wav(DATA / "questions" / "q04.wav"))
                    await asyncio.sleep(4.0)
                    assert '"turn": 3' not in app.out.read_text()

                    # 3. An operator joins: the agent goes quiet, the device becomes an intercom.
                    operator = await caller(livekit, identity="operator-1")
                    try:
                        app.wait_for("operator_joined identity=operator-1")
                        await asyncio.sleep(0.5)
                        mic_at = time.monotonic()
                        rig.say(read_wav(DATA / "questions" / "q05.wav"))
                        await asyncio.sleep(3.5)
                        from_device = transcribe(models_dir, AudioChunk(operator.recording(mic_at), ENGINE_RATE))
                        assert overlap("name a fruit that is yellow", from_device) >= 0.6, from_device
                        speaker_before = len(rig.speaker())
                        operator.say(question("q06"))
                        await asyncio.sleep(3.5)
                        on_device = AudioChunk(rig.speaker().samples[speaker_before:], ENGINE_RATE)
                        assert overlap("what is the opposite of hot", transcribe(models_dir, on_device)) >= 0.6
                        assert '"turn": 3' not in app.out.read_text()  # nobody was answered meanwhile
                        # 4. The operator hands back: the agent answers the caller again.
                        assert await operator.rpc(DEVICE_IDENTITY, "handback") == "ok"
                        app.wait_for("operator_left identity=operator-1")
                        peer.say(question("q07"))
                        await wait_until(lambda: '"turn": 3' in app.out.read_text(), what="turn 3 after handback")
                    finally:
                        await operator.leave()
                finally:
                    await peer.leave()

            asyncio.run(call())
            # 5. Back home: the room is left and the microphone is heard again.
            reply = command("handoff", to="local")
            assert reply["ok"] is True, reply
            app.wait_for("left reason=")
            rig.say(read_wav(DATA / "questions" / "q10.wav"))
            app.wait_for('"turn": 4')
            record = json.loads(app.out.read_text().splitlines()[3])
            assert overlap("what is the boiling point of water", record["user_text"]) >= 0.6, record
            assert app.stop() == 0
        finally:
            if app.proc.poll() is None:
                app.proc.kill()


def ask(livekit: LocalLiveKitServer, device: HeadlessAppliance, models_dir: Path, name: str, identity: str) -> str:
    """A caller joins, asks one question, leaves; returns what it heard back (transcribed)."""

    async def call() -> str:
        mark = device.mark()
        peer = await caller(livekit, identity=identity)
        try:
            await wait_until(lambda: f"caller_joined identity={identity}" in device.log()[mark:], what="the caller")
            await asyncio.sleep(0.5)
            spoken_until = peer.say(question(name))
            await wait_until(lambda: "agent: " in device.log()[mark:], what="a reply")
            await asyncio.sleep(4.0)
            return transcribe(models_dir, AudioChunk(peer.recording(spoken_until), ENGINE_RATE))
        finally:
            await peer.leave()

    return asyncio.run(call())


def last_reply(device: HeadlessAppliance) -> str:
    return [line for line in device.log().splitlines() if line.startswith("agent:")][-1].removeprefix("agent:")


@pytest.mark.parametrize("outage_s", [2.0, 35.0], ids=["sdk-resumes", "device-rejoins"])
def test_the_device_rejoins_after_the_server_restarts_mid_call(
    livekit: LocalLiveKitServer, models_dir: Path, tmp_path: Path, outage_s: float
) -> None:
    """A short outage is bridged by the SDK's own resume; after a long one (the SDK gives up
    after about 30 s) the device's rejoin loop gets it back."""
    device = HeadlessAppliance(models_dir, tmp_path, livekit_env(livekit, APPLIANCE_LIVEKIT__AUTO_JOIN="true"))
    try:
        device.wait_for("livekit: kitchen: joined")
        heard = ask(livekit, device, models_dir, "q02", "caller-1")
        assert overlap(last_reply(device), heard) >= 0.6
        mark = device.mark()
        livekit.stop(crash=True)
        device.wait_for("kitchen: connection state=", after=mark)  # lost, or reconnecting
        time.sleep(outage_s)
        livekit.start()
        device.wait_for("state=connected", after=mark, timeout=60)
        heard = ask(livekit, device, models_dir, "q04", "caller-2")
        assert overlap(last_reply(device), heard) >= 0.6, heard
        assert device.log().count("you:") == 2
        assert device.stop() == 0
    finally:
        device.stop()


def test_a_bad_token_is_one_clear_error_and_the_device_keeps_running(
    livekit: LocalLiveKitServer, models_dir: Path, tmp_path: Path
) -> None:
    with mosquitto() as broker:
        env = {
            **livekit_env(livekit, APPLIANCE_LIVEKIT__AUTO_JOIN="true", APPLIANCE_LIVEKIT__TOKEN="not-a-token"),
            **mqtt_env(broker.port),
        }
        device = HeadlessAppliance(models_dir, tmp_path, env)
        try:
            device.wait_for("livekit: kitchen: error message=cannot join")
            device.wait_for("mqtt: connected")
            assert "401" in device.log() and "Traceback" not in device.log()
            topic = f"appliance/{DEVICE_IDENTITY}/cmd/"
            reply = rr(broker, topic + "handoff", json.dumps({"id": "h1", "to": "room", "token": "still-bad"}))
            assert reply["ok"] is False and reply["error"]["code"] == "unauthorized", reply
            assert "401" in reply["error"]["message"] and "\n" not in reply["error"]["message"]
            reply = rr(broker, topic + "handoff", json.dumps({"id": "h2", "to": "room", "url": "ws://127.0.0.1:9"}))
            assert reply["ok"] is False and reply["error"]["code"] == "unreachable", reply
            assert rr(broker, topic + "ping", '{"id": "p1"}')["ok"] is True
            assert device.stop() == 0
        finally:
            device.stop()


def test_a_token_for_another_identity_is_who_the_device_is_and_the_real_caller_is_answered(
    livekit: LocalLiveKitServer, models_dir: Path, tmp_path: Path
) -> None:
    """The token, not `livekit.identity`, says who the device is in the room. The caller here is named
    what the config calls the device: a device that believed its config took it for itself and never
    answered it."""
    with mosquitto() as broker:
        device = HeadlessAppliance(models_dir, tmp_path, {**livekit_env(livekit, room=None), **mqtt_env(broker.port)})
        topic = f"appliance/{DEVICE_IDENTITY}/cmd/"
        try:
            device.wait_for("mqtt: connected")
            token = mint_token(API_KEY, API_SECRET, "kitchen", "box-7")
            joined = rr(broker, topic + "join", json.dumps({"id": "j1", "token": token}))
            assert joined["ok"] is True and joined["result"]["identity"] == "box-7", joined
            # A room that contradicts the token is refused, not joined twice under two names.
            elsewhere = rr(broker, topic + "join", json.dumps({"id": "j2", "token": token, "room": "hall"}))
            assert elsewhere["ok"] is False and elsewhere["error"]["code"] == "bad_request", elsewhere
            assert "'kitchen'" in elsewhere["error"]["message"] and "'hall'" in elsewhere["error"]["message"]

            async def call() -> str:
                peer = RoomPeer(livekit.url, mint_token(API_KEY, API_SECRET, "kitchen", DEVICE_IDENTITY), "box-7")
                await peer.join()
                try:
                    await wait_until(
                        lambda: f"caller_joined identity={DEVICE_IDENTITY}" in device.log(), what="the caller"
                    )
                    await asyncio.sleep(0.5)
                    spoken_until = peer.say(question("q02"))
                    await wait_until(lambda: "agent: " in device.log(), what="a reply")
                    await asyncio.sleep(4.0)
                    return transcribe(models_dir, AudioChunk(peer.recording(since=spoken_until), ENGINE_RATE))
                finally:
                    await peer.leave()

            heard = asyncio.run(call())
            assert overlap(last_reply(device), heard) >= 0.6, heard
            assert "busy identity" not in device.log(), device.log()
            assert device.stop() == 0
        finally:
            device.stop()


def test_beyond_capacity_a_dispatch_is_told_busy_and_the_running_call_goes_on(
    livekit: LocalLiveKitServer, models_dir: Path, tmp_path: Path
) -> None:
    with mosquitto() as broker:
        env = {
            **livekit_env(livekit, APPLIANCE_LIVEKIT__AUTO_JOIN="true"),
            **mqtt_env(broker.port),
        }
        device = HeadlessAppliance(models_dir, tmp_path, env)
        topic = f"appliance/{DEVICE_IDENTITY}/cmd/"
        try:
            device.wait_for("livekit: kitchen: joined")
            device.wait_for("mqtt: connected")

            async def call() -> str:
                peer = await caller(livekit)
                try:
                    await wait_until(lambda: "caller_joined identity=caller-1" in device.log(), what="the caller")
                    busy = rr(broker, topic + "join", json.dumps({"id": "j1", "room": "hall"}))
                    assert busy["ok"] is False and busy["error"]["code"] == "busy", busy
                    assert "1 of 1" in busy["error"]["message"]
                    moved = rr(broker, topic + "handoff", json.dumps({"id": "h1", "to": "room", "room": "hall"}))
                    assert moved["ok"] is False and moved["error"]["code"] == "busy", moved
                    await asyncio.sleep(0.5)
                    spoken_until = peer.say(question("q02"))
                    await wait_until(lambda: "agent: " in device.log(), what="a reply")
                    await asyncio.sleep(4.0)
                    return transcribe(models_dir, AudioChunk(peer.recording(spoken_until), ENGINE_RATE))
                finally:
                    await peer.leave()

            heard = asyncio.run(call())
            assert overlap(last_reply(device), heard) >= 0.6, heard
            assert "hall" not in device.log().replace("room hall", "")  # never joined
            # Headless and out of any call, a `say` has nowhere to go; in a call it reaches the caller.
            device.wait_for("caller_left identity=caller-1")
            nowhere = rr(broker, topic + "say", json.dumps({"id": "s0", "text": "Hello there."}))
            assert nowhere["ok"] is False and nowhere["error"]["code"] == "not_available", nowhere

            async def announced() -> str:
                peer = await caller(livekit, identity="caller-2")
                try:
                    await wait_until(lambda: "caller_joined identity=caller-2" in device.log(), what="the caller")
                    sent = time.monotonic()
                    said = rr(broker, topic + "say", json.dumps({"id": "s1", "text": "Your taxi is waiting outside."}))
                    assert said["ok"] is True, said
                    await asyncio.sleep(4.0)
                    return transcribe(models_dir, AudioChunk(peer.recording(sent), ENGINE_RATE))
                finally:
                    await peer.leave()

            assert overlap("your taxi is waiting outside", asyncio.run(announced())) >= 0.6
            assert device.stop() == 0
        finally:
            device.stop()


def test_a_join_that_hangs_does_not_hold_up_other_commands(models_dir: Path, tmp_path: Path) -> None:
    """A LiveKit server that accepts and never answers: the handoff waits for its timeout, a ping does not."""
    hung = FaultServer().start()
    hung.mode = "hang"
    with mosquitto() as broker:
        env = {
            "APPLIANCE_LIVEKIT__URL": f"ws://127.0.0.1:{hung.port}",
            "APPLIANCE_LIVEKIT__TOKEN": "a-token",
            "APPLIANCE_LIVEKIT__CONNECT_TIMEOUT_S": "4",
            **mqtt_env(broker.port),
        }
        device = HeadlessAppliance(models_dir, tmp_path, env)
        topic = f"appliance/{DEVICE_IDENTITY}/cmd/"
        try:
            device.wait_for("mqtt: connected")
            results: dict[str, tuple[float, dict[str, object]]] = {}

            def send(name: str, payload: str) -> None:
                started = time.monotonic()
                reply = rr(broker, topic + name, payload)
                results[name] = (time.monotonic() - started, reply)

            handoff = threading.Thread(target=send, args=("handoff", '{"id": "h1", "to": "room", "room": "r"}'))
            handoff.start()
            time.sleep(0.5)
            send("ping", '{"id": "p1"}')
            handoff.join(20)
            ping_s, ping = results["ping"]
            handoff_s, refused = results["handoff"]
            assert ping["ok"] is True and ping_s < 2.0, results
            assert refused["ok"] is False and refused["error"]["code"] == "unreachable", refused  # type: ignore[index]
            assert "timed out after 4 s" in refused["error"]["message"]  # type: ignore[index]
            assert handoff_s > 3.5
            assert device.stop() == 0
        finally:
            device.stop()
            hung.shutdown()
