"""Least privilege on the broker: a real Mosquitto set up with the shipped mosquitto/ files and scripts.

Mosquitto does not tell a client that its publish was refused (a QoS 1 publish is still acknowledged,
then dropped) and grants every subscription (it only withholds the messages the account may not read).
So these tests watch what the other clients receive: a forbidden message is followed by an allowed
marker from the same sender, and once the marker arrives the forbidden one would have arrived before it.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.integration.broker import Broker

MOSQUITTO = Path(__file__).resolve().parents[2] / "mosquitto"
SHIPPED_DIR = "/etc/mosquitto/appliance"
OPERATOR, OPERATOR_PASSWORD = "ops", "ops-pass-1"
DEVICE, DEVICE_PASSWORD, GROUP = "kitchen-1", "kitchen-pass-1", "home"
OTHER, OTHER_PASSWORD, OTHER_GROUP = "hall-2", "hall-pass-1", "hall"
HOME_ASSISTANT, HOME_ASSISTANT_PASSWORD = "hass", "hass-pass-1"


def script(name: str, *args: str, files: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MOSQUITTO / name), "--dir", str(files), *args], capture_output=True, text=True, input=stdin, timeout=30
    )


class AclBroker(Broker):
    """Mosquitto with the shipped appliance.conf (its files moved into the test's folder), a loopback
    listener, and everything logged to a file the tests read for denials."""

    @property
    def files(self) -> Path:
        return self.root / "etc"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> str:
        return (self.run_dir / "mosquitto.log").read_text()

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "mosquitto.pid"

    def start(self) -> AclBroker:
        shipped = (MOSQUITTO / "appliance.conf").read_text()
        assert SHIPPED_DIR in shipped
        config = self.root / "mosquitto.conf"
        config.write_text(
            shipped.replace(SHIPPED_DIR, str(self.files))
            + f"listener {self.port} 127.0.0.1\npersistence false\n"
            + f"log_dest file {self.run_dir / 'mosquitto.log'}\nlog_type all\npid_file {self.pid_file}\n"
        )
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self.pid_file.exists():
            assert self.process.poll() is None, "mosquitto did not start"
            assert time.monotonic() < deadline, "mosquitto wrote no pid file"
            time.sleep(0.05)
        return self

    def denied(self, client_id: str, topic: str) -> bool:
        """Whether the broker logged that it refused CLIENT_ID's publish on TOPIC."""
        return any(
            f"Denied PUBLISH from {client_id} " in line and f"'{topic}'" in line for line in self.log.splitlines()
        )

    def wait_for_log(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            assert time.monotonic() < deadline, f"no {text!r} in the broker's log"
            time.sleep(0.05)


@pytest.fixture
def broker() -> Iterator[AclBroker]:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto is not installed (scripts/setup --test installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    root = Path(tempfile.mkdtemp(prefix="mq-acl-"))
    # Started as root, Mosquitto drops to its own user: it reads the files through their group (the
    # scripts set it) and writes its log and pid where that user may.
    root.chmod(0o755)
    (root / "run").mkdir()
    if os.geteuid() == 0:
        shutil.chown(root / "run", user="mosquitto")
    files = root / "etc"
    accounts = [
        ("add-operator.sh", OPERATOR, OPERATOR_PASSWORD),
        ("add-device.sh", DEVICE, DEVICE_PASSWORD, "--group", GROUP),
        ("add-device.sh", OTHER, OTHER_PASSWORD, "--group", OTHER_GROUP),
        ("add-operator.sh", HOME_ASSISTANT, HOME_ASSISTANT_PASSWORD, "--home-assistant"),
    ]
    for name, account, password, *options in accounts:
        done = script(name, *options, "--password", password, account, files=files)
        assert done.returncode == 0 and done.stdout == "", done.stderr
    broker = AclBroker(root, port).start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


class Account:
    """One MQTT v5 client logged in with a username and password, and what it receives, in order."""

    def __init__(self, broker: Broker, username: str | None, password: str | None, client_id: str = "") -> None:
        self.name = client_id or f"{username}-{uuid.uuid4().hex[:6]}"
        self.received: queue.Queue[tuple[str, str]] = queue.Queue()
        self._connack: queue.Queue[ReasonCode] = queue.Queue()
        self._subacks: queue.Queue[int] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.name, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self._connack.put(reason)
        self.client.on_subscribe = lambda _c, _u, mid, _r, _p: self._subacks.put(mid)
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, m.payload.decode()))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.refusal = self._connack.get(timeout=10)

    @property
    def connected(self) -> bool:
        return not self.refusal.is_failure

    def subscribe(self, *filters: str) -> None:
        for topic_filter in filters:
            _, mid = self.client.subscribe(topic_filter, qos=1)
            assert self._subacks.get(timeout=10) == mid

    def publish(self, topic: str, payload: str = "x", retain: bool = False, response_topic: str = "") -> None:
        properties = None
        if response_topic:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = response_topic
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        info.wait_for_publish(10)  # acknowledged: which, for a refused publish, says nothing

    def until(self, marker: str, timeout: float = 10) -> list[str]:
        """The topics received before the message whose payload is MARKER (which must come)."""
        topics: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                topic, payload = self.received.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.name} got no marker within {timeout} s, only {topics}") from None
            if payload == marker:
                return topics
            topics.append(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def accounts(broker: AclBroker) -> Iterator[dict[str, Account]]:
    opened = {
        "operator": Account(broker, OPERATOR, OPERATOR_PASSWORD),
        "device": Account(broker, DEVICE, DEVICE_PASSWORD),
        "other": Account(broker, OTHER, OTHER_PASSWORD),
        "home_assistant": Account(broker, HOME_ASSISTANT, HOME_ASSISTANT_PASSWORD),
    }
    try:
        assert all(account.connected for account in opened.values())
        yield opened
    finally:
        for account in opened.values():
            account.close()


def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


DEVICE_PUBLISHES = [
    f"appliance/{DEVICE}/status",
    f"appliance/{DEVICE}/telemetry",
    f"appliance/{DEVICE}/events",
    f"appliance/{DEVICE}/state",
    f"appliance/{DEVICE}/config/reported",
    f"homeassistant/device/{DEVICE}/config",
    f"appliance/replies/{uuid.uuid4()}",
]

DEVICE_READS = [
    f"appliance/{DEVICE}/cmd/ping",
    f"appliance/{DEVICE}/config/desired",
    f"appliance/group/{GROUP}/cmd/ping",
    f"appliance/group/{GROUP}/config/desired",
    "appliance/all/cmd/ping",
    "appliance/all/config/desired",
    "homeassistant/status",
]

DEVICE_MAY_NOT_PUBLISH = [
    f"appliance/{OTHER}/cmd/restart",  # commanding another device
    f"appliance/group/{OTHER_GROUP}/cmd/restart",  # another group
    f"appliance/group/{GROUP}/cmd/restart",  # its own group
    "appliance/all/cmd/restart",  # the fleet
    f"appliance/{DEVICE}/cmd/restart",  # itself: commands come from operators only
    f"appliance/{DEVICE}/config/desired",  # desired state, its own included
    f"appliance/{OTHER}/config/desired",
    f"appliance/group/{GROUP}/config/desired",
    "appliance/all/config/desired",
    f"appliance/{OTHER}/status",  # impersonating another device
    f"appliance/{OTHER}/state",
    f"homeassistant/device/{OTHER}/config",
    "homeassistant/status",
]


def test_a_device_publishes_its_own_topics_discovery_and_replies(accounts: dict[str, Account]) -> None:
    operator, device = accounts["operator"], accounts["device"]
    operator.subscribe("appliance/#", "homeassistant/#")
    for topic in DEVICE_PUBLISHES:
        device.publish(topic)
    device.publish(f"appliance/{DEVICE}/events", end := marker())
    assert operator.until(end) == DEVICE_PUBLISHES


def test_a_device_reads_commands_and_desired_state_for_itself_its_group_and_the_fleet(
    accounts: dict[str, Account],
) -> None:
    operator, device = accounts["operator"], accounts["device"]
    device.subscribe(f"appliance/{DEVICE}/cmd/+", f"appliance/{DEVICE}/config/desired")
    device.subscribe(f"appliance/group/{GROUP}/cmd/+", f"appliance/group/{GROUP}/config/desired")
    device.subscribe("appliance/all/cmd/+", "appliance/all/config/desired", "homeassistant/status")
    for topic in DEVICE_READS:
        operator.publish(topic)
    operator.publish(f"appliance/{DEVICE}/cmd/marker", end := marker())
    assert device.until(end) == DEVICE_READS


def test_a_device_cannot_command_anyone_nor_write_desired_state(
    broker: AclBroker, accounts: dict[str, Account]
) -> None:
    operator, device, other = accounts["operator"], accounts["device"], accounts["other"]
    operator.subscribe("appliance/#", "homeassistant/#")
    other.subscribe(f"appliance/{OTHER}/cmd/+", f"appliance/group/{OTHER_GROUP}/cmd/+", "appliance/all/cmd/+")
    for topic in DEVICE_MAY_NOT_PUBLISH:
        device.publish(topic, retain=topic.endswith("desired"))
    device.publish(f"appliance/{DEVICE}/events", end := marker())
    assert operator.until(end) == []
    for topic in DEVICE_MAY_NOT_PUBLISH:
        assert broker.denied(device.name, topic), topic
    # Nothing was retained either: an operator who looks later finds no desired state the device wrote.
    late = Account(broker, OPERATOR, OPERATOR_PASSWORD)
    late.subscribe("appliance/+/config/desired", "appliance/group/+/config/desired", f"appliance/{DEVICE}/cmd/+")
    operator.publish(f"appliance/{DEVICE}/cmd/marker", end := marker())
    assert late.until(end) == []
    late.close()
    assert other.received.empty()


def test_a_device_cannot_read_another_devices_topics_nor_replies(accounts: dict[str, Account]) -> None:
    operator, device, other = accounts["operator"], accounts["device"], accounts["other"]
    operator.subscribe("appliance/#")
    other.publish(f"appliance/{OTHER}/status", '{"state": "online"}', retain=True)
    other.publish(f"appliance/{OTHER}/telemetry", seen := marker())
    assert operator.until(seen) == [f"appliance/{OTHER}/status"]  # routed before the device subscribes
    device.subscribe("#")  # Mosquitto grants it, and then withholds what the device may not read
    operator.publish(f"appliance/{OTHER}/cmd/ping")
    operator.publish(f"appliance/{OTHER}/config/desired", '{"version": 1, "patch": {}}', retain=True)
    operator.publish(f"appliance/group/{OTHER_GROUP}/cmd/ping")
    operator.publish(f"appliance/replies/{uuid.uuid4()}")
    operator.publish(f"appliance/{DEVICE}/cmd/marker", end := marker())
    assert device.until(end) == []


def test_an_operator_commands_and_writes_desired_state_everywhere(accounts: dict[str, Account]) -> None:
    operator, device, other = accounts["operator"], accounts["device"], accounts["other"]
    device.subscribe(f"appliance/{DEVICE}/cmd/+", f"appliance/{DEVICE}/config/desired", "appliance/all/cmd/+")
    other.subscribe(f"appliance/group/{OTHER_GROUP}/cmd/+", f"appliance/group/{OTHER_GROUP}/config/desired")
    sent_to_device = [f"appliance/{DEVICE}/cmd/ping", f"appliance/{DEVICE}/config/desired", "appliance/all/cmd/ping"]
    sent_to_group = [f"appliance/group/{OTHER_GROUP}/cmd/ping", f"appliance/group/{OTHER_GROUP}/config/desired"]
    for topic in [*sent_to_device, *sent_to_group]:
        operator.publish(topic, '{"version": 1, "patch": {}}', retain=topic.endswith("desired"))
    operator.publish("appliance/all/cmd/marker", end := marker())
    assert device.until(end) == sent_to_device
    operator.publish(f"appliance/group/{OTHER_GROUP}/cmd/marker", end := marker())
    assert other.until(end) == sent_to_group


def test_home_assistant_commands_one_device_at_a_time_and_reads_what_its_entities_show(
    accounts: dict[str, Account],
) -> None:
    operator, device, home_assistant = accounts["operator"], accounts["device"], accounts["home_assistant"]
    home_assistant.subscribe("appliance/#", "homeassistant/#")
    device.subscribe(f"appliance/{DEVICE}/cmd/+", f"appliance/group/{GROUP}/cmd/+", "appliance/all/cmd/+")
    device.subscribe(f"appliance/{DEVICE}/config/desired")
    operator.publish("appliance/release/latest", retain=True)  # the update entity's newest release
    device.publish("appliance/release/latest", retain=True)  # refused: only operators announce releases
    shown = [f"appliance/{DEVICE}/{name}" for name in ("status", "state", "telemetry", "events")]
    for topic in [*shown, f"homeassistant/device/{DEVICE}/config", f"appliance/{DEVICE}/config/reported"]:
        device.publish(topic)
    device.publish(f"appliance/replies/{uuid.uuid4()}")
    device.publish(f"appliance/{DEVICE}/events", end := marker())
    assert home_assistant.until(end) == ["appliance/release/latest", *shown, f"homeassistant/device/{DEVICE}/config"]

    operator.subscribe("homeassistant/status")
    home_assistant.publish(f"appliance/{DEVICE}/cmd/mute", '{"on": true}')
    for forbidden in ("appliance/all/cmd/restart", f"appliance/group/{GROUP}/cmd/restart"):
        home_assistant.publish(forbidden)
    home_assistant.publish(f"appliance/{DEVICE}/config/desired", retain=True)
    home_assistant.publish("homeassistant/status", birth := marker())  # its birth message: "online"
    home_assistant.publish(f"appliance/{DEVICE}/cmd/volume", end := marker())
    assert device.until(end) == [f"appliance/{DEVICE}/cmd/mute"]
    assert operator.until(birth) == []


@pytest.mark.parametrize(
    ("username", "password"),
    [(DEVICE, "wrong"), ("nobody", DEVICE_PASSWORD), (None, None), (DEVICE, None)],
    ids=["wrong-password", "unknown-user", "anonymous", "no-password"],
)
def test_bad_credentials_are_refused(broker: AclBroker, username: str | None, password: str | None) -> None:
    account = Account(broker, username, password)
    try:
        assert account.refusal.is_failure and account.refusal.value in (0x86, 0x87), account.refusal
    finally:
        account.close()


def test_adding_a_device_again_replaces_its_password_and_its_block(broker: AclBroker) -> None:
    done = script(
        "add-device.sh", "--group", OTHER_GROUP, "--reload", "--pid-file", str(broker.pid_file), DEVICE,
        files=broker.files,
    )  # fmt: skip
    new_password = done.stdout.strip()
    assert done.returncode == 0 and len(new_password) == 32 and new_password.isalnum(), done.stderr
    broker.wait_for_log("Reloading config")
    acl = (broker.files / "acl").read_text().splitlines()
    assert acl.count(f"user {DEVICE}") == 1 and acl.count(f"# >>> device {DEVICE}") == 1
    assert (broker.files / "passwd").read_text().count(f"{DEVICE}:") == 1

    old = Account(broker, DEVICE, DEVICE_PASSWORD)
    old.close()
    assert old.refusal.is_failure
    device, operator = Account(broker, DEVICE, new_password), Account(broker, OPERATOR, OPERATOR_PASSWORD)
    try:
        assert device.connected
        device.subscribe(f"appliance/group/{GROUP}/cmd/+", f"appliance/group/{OTHER_GROUP}/cmd/+")
        operator.publish(f"appliance/group/{GROUP}/cmd/ping")  # its old group: no longer its business
        operator.publish(f"appliance/group/{OTHER_GROUP}/cmd/ping", end := marker())
        assert device.until(end) == []  # the marker itself came on the new group's topic
    finally:
        device.close()
        operator.close()


def test_a_removed_device_can_no_longer_log_in(broker: AclBroker) -> None:
    done = script(
        "add-device.sh", "--remove", "--reload", "--pid-file", str(broker.pid_file), OTHER, files=broker.files
    )
    assert done.returncode == 0, done.stderr
    broker.wait_for_log("Reloading config")
    assert f"user {OTHER}" not in (broker.files / "acl").read_text()
    account = Account(broker, OTHER, OTHER_PASSWORD)
    account.close()
    assert account.refusal.is_failure


def test_a_password_given_on_stdin_logs_in_and_is_printed_nowhere(broker: AclBroker) -> None:
    done = script(
        "add-operator.sh", "--password", "-", "--reload", "--pid-file", str(broker.pid_file), "night-shift",
        files=broker.files, stdin="a pass with spaces: and colons\n",
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "" and "colons" not in done.stderr, done.stderr
    broker.wait_for_log("Reloading config")
    account = Account(broker, "night-shift", "a pass with spaces: and colons")
    account.close()
    assert account.connected


def test_devices_added_at_the_same_time_all_get_their_block(tmp_path: Path) -> None:
    names = [f"box-{index}" for index in range(12)]
    running = [
        subprocess.Popen([str(MOSQUITTO / "add-device.sh"), "--dir", str(tmp_path), name], stdout=subprocess.PIPE)
        for name in names
    ]
    passwords = [process.communicate(timeout=60)[0].decode().strip() for process in running]
    assert all(process.returncode == 0 for process in running) and len(set(passwords)) == len(names)
    acl = (tmp_path / "acl").read_text().splitlines()
    assert sorted(line.removeprefix("user ") for line in acl if line.startswith("user ")) == sorted(names)
    assert sorted(line.split(":")[0] for line in (tmp_path / "passwd").read_text().splitlines()) == sorted(names)


def test_the_topic_prefix_and_group_go_into_every_line_of_the_block(tmp_path: Path) -> None:
    done = script("add-device.sh", "--prefix", "fleet/v1", "--group", "attic", "--password", "p", "box", files=tmp_path)
    assert done.returncode == 0, done.stderr
    block = (tmp_path / "acl").read_text().split("# >>> device box\n", 1)[1].split("# <<< device box", 1)[0]
    topics = [line.split(" ", 2)[2] for line in block.splitlines() if line.startswith("topic ")]
    assert "fleet/v1/group/attic/cmd/+" in topics and "fleet/v1/replies/#" in topics
    assert all(topic.startswith(("fleet/v1/", "homeassistant/")) for topic in topics) and "@" not in block


@pytest.mark.parametrize(
    "name",
    ["a/b", "a+b", "#", "", "x" * 65, "all", "group", "replies", "kitchen 1", f"x\nuser {OPERATOR}", "-", "-D", "ké"],
)
def test_a_bad_device_id_is_refused_with_one_line_and_changes_nothing(broker: AclBroker, name: str) -> None:
    before = {path.name: path.read_text() for path in broker.files.iterdir() if path.is_file()}
    done = script("add-device.sh", "--password", "p", "--", name, files=broker.files)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("add-device: ")
    assert {path.name: path.read_text() for path in broker.files.iterdir() if path.is_file()} == before


def test_the_scripts_are_shellcheck_clean() -> None:
    scripts = sorted(MOSQUITTO.glob("*.sh"))
    assert {path.name for path in scripts} == {"add-device.sh", "add-operator.sh", "common.sh"}
    for path in scripts:
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, path
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (scripts/setup --test installs it)")
    done = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def operator_rr(broker: Broker, topic: str, payload: str) -> dict[str, object]:
    """One command as an operator sends it with Mosquitto's own client: logged in, replies under appliance/replies/."""
    done = subprocess.run(
        ["mosquitto_rr", "-p", str(broker.port), "-V", "5", "-u", OPERATOR, "-P", OPERATOR_PASSWORD,
         "-t", topic, "-e", f"appliance/replies/{uuid.uuid4()}", "-m", payload, "-W", "10"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_real_device_does_everything_it_does_within_its_acl(
    broker: AclBroker, models_dir: Path, tmp_path: Path
) -> None:
    from tests.integration.test_fleet import HeadlessDevice

    operator = Account(broker, OPERATOR, OPERATOR_PASSWORD)
    operator.subscribe("appliance/#", "homeassistant/#")
    credentials = {"APPLIANCE_MQTT__USERNAME": DEVICE, "APPLIANCE_MQTT__PASSWORD": DEVICE_PASSWORD}
    device = HeadlessDevice(broker, models_dir, tmp_path, extra_env=credentials)
    try:
        device.wait_for("mqtt: connected")
        for topic in (f"appliance/{DEVICE}/cmd/ping", f"appliance/group/{GROUP}/cmd/ping", "appliance/all/cmd/ping"):
            reply = operator_rr(broker, topic, json.dumps({"id": topic}))
            assert reply["ok"] is True and reply["device"] == DEVICE, reply
        operator.publish(f"appliance/{DEVICE}/cmd/ping", '{"id": "no-response-topic"}')  # answered on events
        operator.publish("homeassistant/status", "online")  # the device announces itself again
        time.sleep(1.5)  # a telemetry interval
        device.proc.terminate()  # a clean stop publishes offline itself
        assert device.proc.wait(25) == 0
    finally:
        device.close()
        operator.close()
    assert [line for line in broker.log.splitlines() if f"appliance-{DEVICE}" in line and "Denied" in line] == []
    seen: set[str] = set()
    while not operator.received.empty():
        seen.add(operator.received.get()[0])
    published = {f"appliance/{DEVICE}/{name}" for name in ("status", "state", "telemetry", "events")}
    assert published | {f"homeassistant/device/{DEVICE}/config"} <= seen
