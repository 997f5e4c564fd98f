"""`appliance doctor --json` on a real Mosquitto, a real HTTP server and the real model store."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import Broker, mosquitto
from tests.integration.conftest import Cli

HEADLESS = '[audio]\ninput = "none"\noutput = "none"\n'


@pytest.fixture
def broker() -> Iterator[Broker]:
    with mosquitto() as broker:
        yield broker


@pytest.fixture
def http_server() -> Iterator[int]:
    """A server that answers every GET with 404, as a LiveKit server's unknown paths would."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def doctor(cli: Cli, tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    config = tmp_path / "appliance.toml"
    config.write_text(HEADLESS + toml)
    result = cli("doctor", "--json", "--timeout", "1", "--config", str(config), env=env)
    return result.code, json.loads(result.stdout)


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["name"] == name]
    assert len(found) == 1, [c["name"] for c in report["checks"]]
    return found[0]


def test_reachable_broker_passes(cli: Cli, tmp_path: Path, broker: Broker) -> None:
    code, report = doctor(cli, tmp_path, f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n')
    assert check(report, "mqtt broker") == {
        "name": "mqtt broker",
        "ok": True,
        "detail": f"127.0.0.1:{broker.port} reachable",
        "required": True,
    }
    assert report["ok"] is True and code == 0, [c for c in report["checks"] if not c["ok"]]


def test_unreachable_broker_fails_with_exit_1(cli: Cli, tmp_path: Path) -> None:
    port = closed_port()
    code, report = doctor(cli, tmp_path, f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n')
    broker = check(report, "mqtt broker")
    assert broker["ok"] is False and broker["required"] is True
    assert "refused" in broker["detail"].lower()
    assert report["ok"] is False and code == 1


def test_broker_is_not_probed_when_mqtt_is_off(cli: Cli, tmp_path: Path) -> None:
    code, report = doctor(cli, tmp_path, f"[mqtt]\nenabled = false\nport = {closed_port()}\n")
    assert check(report, "mqtt broker") == {"name": "mqtt broker", "ok": True, "detail": "mqtt off", "required": False}
    assert code == 0


def test_livekit_url_is_fetched_over_http(cli: Cli, tmp_path: Path, http_server: int) -> None:
    livekit = f'[livekit]\nurl = "ws://127.0.0.1:{http_server}"\ntoken = "env:LK_TOKEN"\n'
    code, report = doctor(cli, tmp_path, livekit, env={"LK_TOKEN": "t"})
    server = check(report, "livekit server")
    assert server["ok"] is True and server["detail"] == f"http://127.0.0.1:{http_server} answered HTTP 404"
    assert check(report, "livekit credentials")["ok"] is True
    assert code == 0


def test_unreachable_livekit_fails(cli: Cli, tmp_path: Path) -> None:
    code, report = doctor(cli, tmp_path, f'[livekit]\nurl = "wss://127.0.0.1:{closed_port()}"\n')
    server = check(report, "livekit server")
    assert server["ok"] is False and server["detail"].startswith("https://127.0.0.1:")
    assert check(report, "livekit credentials")["ok"] is False
    assert code == 1


def test_missing_models_fail_and_name_the_fix(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    code, report = doctor(cli, tmp_path, "", env={"APPLIANCE_MODELS__DIR": str(empty)})
    model = check(report, "model smollm2-135m")
    assert model == {"name": "model smollm2-135m", "ok": False, "detail": "missing: appliance models fetch",
                     "required": True}  # fmt: skip
    assert code == 1


def test_a_configured_model_that_is_not_a_default_is_required(cli: Cli, tmp_path: Path, models_dir: Path) -> None:
    store = tmp_path / "defaults-only"
    for name in ("silero-vad", "whisper-tiny.en", "smollm2-135m", "piper-joe-medium"):
        shutil.copytree(models_dir / name, store / name, copy_function=os.link)
    env = {"APPLIANCE_MODELS__DIR": str(store)}
    code, report = doctor(cli, tmp_path, '[stt]\nprovider = "local/whisper-base"\n', env=env)
    assert check(report, "model whisper-base") == {"name": "model whisper-base", "ok": False,
                                                   "detail": "missing: appliance models fetch whisper-base",
                                                   "required": True}  # fmt: skip
    assert code == 1
    code, report = doctor(cli, tmp_path, "", env=env)
    assert "model whisper-base" not in [c["name"] for c in report["checks"]] and code == 0


def test_table_output_marks_failures(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(HEADLESS + f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {closed_port()}\n')
    result = cli("doctor", "--timeout", "1", "--config", str(config))
    line = next(line for line in result.stdout.splitlines() if line.startswith("mqtt broker"))
    assert "FAIL" in line and "refused" in line.lower()
    assert result.code == 1
