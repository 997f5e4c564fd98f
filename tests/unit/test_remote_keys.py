"""The fleet may not change a device's hosts, credentials, paths or secret references unless the device allows it."""

from __future__ import annotations

from appliance.fleet.remote_keys import forbidden_keys


def test_hosts_credentials_paths_and_secret_references_are_refused_by_default() -> None:
    patch = {
        "mqtt": {"host": "evil.example.com", "password": "file:/etc/shadow"},
        "providers": {"acme": {"base_url": "https://evil.example.com/v1"}},
        "models": {"dir": "/tmp/elsewhere"},
        "state": {"dir": "/"},
        "livekit": {"url": "wss://evil.example.com", "room": "hall"},
        "tts": {"provider": "local/piper-joe-medium"},
        "agent": {"instructions": "env:HOME"},
        "activation": {"pipeline": "auto", "mode": "wake"},
    }
    assert forbidden_keys(patch, []) == [
        "mqtt.host",
        "mqtt.password",
        "providers.acme.base_url",
        "models.dir",
        "state.dir",
        "livekit.url",
        "agent.instructions",  # a secret reference, wherever it is
        "activation.pipeline",  # it opens the satellite listener; the mode next to it is the fleet's to set
    ]


def test_the_devices_own_remote_keys_allow_them_and_the_fleet_section_never() -> None:
    patch = {"providers": {"acme": {"base_url": "https://llm.example.com/v1"}}, "mqtt": {"host": "b2"}}
    assert forbidden_keys(patch, ["providers", "mqtt.host"]) == []
    assert forbidden_keys(patch, ["providers.acme"]) == ["mqtt.host"]
    assert forbidden_keys({"fleet": {"remote_keys": ["mqtt"]}}, ["fleet"]) == ["fleet.remote_keys"]


def test_ordinary_settings_pass() -> None:
    patch = {"endpointing": {"min_silence_ms": 400}, "audio": {"volume": 30}, "agent": {"name": "chat"}}
    assert forbidden_keys(patch, []) == []


def test_the_keys_a_release_must_be_signed_by_are_never_set_by_the_fleet() -> None:
    patch = {"update": {"trusted_keys": ["bm90IGEga2V5"], "installer": "/tmp/x.sh"}}
    assert forbidden_keys(patch, ["update"]) == ["update.trusted_keys", "update.installer"]
