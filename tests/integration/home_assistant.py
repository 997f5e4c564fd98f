"""Home Assistant core as a subprocess for the tests: its own config directory, an MQTT config entry
for the test broker, an owner made through the onboarding API (no browser), and its REST and websocket
APIs. The core is installed by `scripts/home-assistant` (its own virtualenv: it needs Python 3.13)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

VERSION = os.environ.get("HOME_ASSISTANT_VERSION", "2025.4.4")
"""What `scripts/home-assistant` installs (keep the defaults in step): the newest release for Python 3.13.0."""

OWNER = {"name": "Test Owner", "username": "owner", "password": "owner-pass-1234", "language": "en"}


class HomeAssistantMissing(RuntimeError):
    pass


def find_hass() -> Path:
    """$APPLIANCE_HOME_ASSISTANT (a `hass` executable), or what `scripts/home-assistant` cached."""
    explicit = os.environ.get("APPLIANCE_HOME_ASSISTANT")
    if explicit:
        return Path(explicit)
    cache = Path(
        os.environ.get("APPLIANCE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "appliance"
    )
    root = cache / f"home-assistant-{VERSION}"
    if not (root / ".installed").exists():
        raise HomeAssistantMissing(
            f"Home Assistant core {VERSION} is not installed at {root}: run scripts/home-assistant "
            "(scripts/setup --test does)"
        )
    return root / "bin" / "hass"


def hass_or_skip() -> Path:
    """The `hass` to test with; without one the test skips, saying why, except in CI (`CI=true`), which
    installs it (scripts/setup --test): missing there is a failure."""
    import pytest

    try:
        return find_hass()
    except HomeAssistantMissing as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wyoming_entry(port: int) -> dict[str, Any]:
    """A config entry of Home Assistant's Wyoming integration for a service on this machine, as its
    "Add integration" dialog makes one (Zeroconf discovery makes the same)."""
    return {
        "entry_id": f"appliancetestwyoming{port:012d}",
        "domain": "wyoming",
        "title": "appliance",
        "data": {"host": "127.0.0.1", "port": port},
        "options": {},
        "source": "user",
        "version": 1,
        "minor_version": 1,
    }


def write_config(config: Path, http_port: int, broker_port: int, entries: tuple[dict[str, Any], ...] = ()) -> None:
    """A minimal configuration (no `default_config`: only what Home Assistant always sets up, and MQTT),
    with the location given so nothing is looked up online, a pre-seeded MQTT config entry and `entries`."""
    (config / ".storage").mkdir(parents=True)
    (config / "configuration.yaml").write_text(
        "homeassistant:\n"
        "  name: Test home\n"
        "  latitude: 52.5\n"
        "  longitude: 13.4\n"
        "  elevation: 34\n"
        "  unit_system: metric\n"
        "  time_zone: UTC\n"
        "  country: DE\n"
        "  currency: EUR\n"
        f"  internal_url: http://127.0.0.1:{http_port}\n"  # where its ffmpeg fetches announcements from
        "http:\n"
        "  server_host: 127.0.0.1\n"
        f"  server_port: {http_port}\n"
        "logger:\n"
        "  default: info\n"
        "  logs:\n"
        "    homeassistant.components.wyoming: debug\n"  # what it sends a satellite, and what it missed
    )
    # An entry as an older Home Assistant wrote it (storage minor version 1): the core fills in the
    # fields later versions added, so the same file serves later releases too.
    entry = {
        "entry_id": "appliancetestmqtt0000000000000001",
        "domain": "mqtt",
        "title": "Test Mosquitto",
        "data": {"broker": "127.0.0.1", "port": broker_port},
        "options": {"discovery": True, "discovery_prefix": "homeassistant"},
        "source": "user",
        "version": 1,
        "minor_version": 2,
    }
    store = {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry, *entries]}}
    (config / ".storage" / "core.config_entries").write_text(json.dumps(store))


class HomeAssistant:
    """`hass -c <config> --skip-pip` (every requirement is installed with it: it starts offline)."""

    def __init__(self, hass: Path, root: Path, broker_port: int, entries: tuple[dict[str, Any], ...] = ()) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "home-assistant"
        self.log = root / "home-assistant.log"
        self.output = root / "home-assistant.out"
        self.token = ""
        self.ffmpeg = hass.parent / "ffmpeg"
        """The ffmpeg scripts/home-assistant installed beside it (it converts TTS audio with it)."""
        write_config(self.config, self.port, broker_port, entries)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(hass), "-c", str(self.config), "--skip-pip", "--log-file", str(self.log), "--log-no-color"],
            stdout=self.output.open("w"),
            stderr=subprocess.STDOUT,
            # its virtualenv's bin first: the `ffmpeg` scripts/home-assistant put there converts TTS audio
            env={**os.environ, "PATH": f"{hass.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        )

    def wait_until_answering(self, timeout: float = 180) -> float:
        """Seconds from the start until the HTTP API answers (the onboarding view needs no login)."""
        deadline = time.monotonic() + timeout
        onboarding = self.url + "/api/onboarding"
        while True:
            assert self.proc.poll() is None, f"Home Assistant exited {self.proc.returncode}: {self.tail()}"
            assert time.monotonic() < deadline, f"Home Assistant did not answer in {timeout} s: {self.tail()}"
            with contextlib.suppress(OSError), urllib.request.urlopen(onboarding, timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - self.started
            time.sleep(0.3)

    def onboard(self) -> None:
        """Create the owner as the onboarding page would, and trade its auth code for an access token."""
        client_id = self.url + "/"
        created = self._call("POST", "/api/onboarding/users", {**OWNER, "client_id": client_id}, auth=False)
        form = {"grant_type": "authorization_code", "code": created["auth_code"], "client_id": client_id}
        request = urllib.request.Request(
            self.url + "/auth/token", data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            self.token = json.loads(response.read())["access_token"]

    def _call(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode(errors='replace')}") from None

    def version(self) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", self._call("GET", "/api/config")["version"])[:3])

    def states(self) -> dict[str, dict[str, Any]]:
        return {state["entity_id"]: state for state in self._call("GET", "/api/states")}

    def service(self, domain: str, service: str, **data: Any) -> None:
        """An action as the dashboard runs it (`POST /api/services/<domain>/<service>`)."""
        self._call("POST", f"/api/services/{domain}/{service}", data)

    def websocket(self, *commands: dict[str, Any]) -> list[Any]:
        """The results of websocket commands (the registries have no REST view)."""
        import aiohttp

        async def run() -> list[Any]:
            results: list[Any] = []
            async with aiohttp.ClientSession() as session, session.ws_connect(self.url + "/api/websocket") as ws:
                assert (await ws.receive_json())["type"] == "auth_required"
                await ws.send_json({"type": "auth", "access_token": self.token})
                assert (await ws.receive_json())["type"] == "auth_ok"
                for number, command in enumerate(commands, 1):
                    await ws.send_json({"id": number, **command})
                    reply = await ws.receive_json()
                    assert reply["id"] == number and reply["success"], reply
                    results.append(reply["result"])
            return results

        return asyncio.run(run())

    def run_pipeline(self, pipeline: str, audio: bytes, rate: int, timeout: float = 120) -> list[dict[str, Any]]:
        """One Assist pipeline run from speech to speech, as the voice dialog in the browser runs it
        (`assist_pipeline/run`, the audio as binary messages on the handler it names): its events."""
        import aiohttp

        start = {
            "id": 1,
            "type": "assist_pipeline/run",
            "pipeline": pipeline,
            "start_stage": "stt",
            "end_stage": "tts",
            "input": {"sample_rate": rate, "no_vad": True},  # the whole request, then the end of audio
        }

        async def run() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            async with aiohttp.ClientSession() as session, session.ws_connect(self.url + "/api/websocket") as ws:
                assert (await ws.receive_json())["type"] == "auth_required"
                await ws.send_json({"type": "auth", "access_token": self.token})
                assert (await ws.receive_json())["type"] == "auth_ok"
                await ws.send_json(start)
                async with asyncio.timeout(timeout):
                    while True:
                        message = await ws.receive_json()
                        if message["type"] == "result":
                            assert message["success"], message
                            continue
                        event = message["event"]
                        events.append(event)
                        if event["type"] == "run-start":
                            handler = bytes([event["data"]["runner_data"]["stt_binary_handler_id"]])
                            for at in range(0, len(audio), 4096):
                                await ws.send_bytes(handler + audio[at : at + 4096])
                            await ws.send_bytes(handler)  # the end of the audio
                        if event["type"] in ("run-end", "error"):
                            return events

        return asyncio.run(run())

    def fetch(self, path: str) -> bytes:
        """A file Home Assistant serves, such as the spoken answer of a pipeline run."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return bytes(response.read())

    def decode(self, data: bytes, rate: int = 16_000) -> np.ndarray:
        """Audio Home Assistant serves (mp3 to a browser) as 16-bit mono samples, with its own ffmpeg."""
        command = [str(self.ffmpeg), "-v", "error", "-i", "pipe:", "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:"]
        decoded = subprocess.run(command, input=data, capture_output=True, timeout=60, check=True)
        return np.frombuffer(decoded.stdout, dtype="<i2").copy()

    def complaints(self, *about: str) -> list[str]:
        """Warnings and errors in the log from the MQTT integration or naming any of `about`."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        found = []
        for line in text.splitlines():
            level = re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) \(.*?\) \[([^\]]+)\]", line)
            if level and (level[2].startswith("homeassistant.components.mqtt") or any(a in line for a in about)):
                found.append(line)
        return found

    def tail(self, lines: int = 40) -> str:
        text = "".join(p.read_text(errors="replace") for p in (self.output, self.log) if p.exists())
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
