"""Which doctor checks are required: cloud keys where nothing local backs them up, sound only when used."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.cli.doctor import Check, credential_checks, report, sound_check
from appliance.config import AppConfig
from appliance.system.reachability import http_url


def config(**sections: Any) -> AppConfig:
    return AppConfig.model_validate(sections)


def by_name(checks: list[Check], name: str) -> Check:
    return next(c for c in checks if c.name == name)


def test_a_cloud_only_chain_without_a_key_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    checks = credential_checks(config(llm={"provider": ["openai/gpt-4o-mini"]}))
    assert by_name(checks, "cloud credentials for openai") == Check(
        "cloud credentials for openai", False, "none: set [providers.openai] api_key", required=True
    )


def test_a_cloud_fallback_behind_local_is_only_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = config(
        llm={"provider": ["local/smollm2-135m", "openai/gpt-4o-mini"]},
        providers={"openai": {"api_key": "env:OPENAI_API_KEY"}},
    )
    check = by_name(credential_checks(cfg), "cloud credentials for openai")
    assert not check.ok and not check.required
    assert check.detail == "environment variable OPENAI_API_KEY is not set"
    assert report([check])["ok"] is True


def test_a_key_by_reference_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_KEY", "x")
    cfg = config(
        stt={"provider": ["groq/whisper-large-v3"]},
        providers={"groq": {"base_url": "https://api.groq.com/openai/v1", "api_key": "env:GROQ_KEY"}},
    )
    assert by_name(credential_checks(cfg), "cloud credentials for groq") == Check(
        "cloud credentials for groq", True, "env:GROQ_KEY", required=True
    )


def test_livekit_credentials_are_required_only_for_auto_join() -> None:
    check = by_name(credential_checks(config(livekit={"url": "ws://x"})), "livekit credentials")
    assert not check.ok and not check.required


def test_headless_boxes_do_not_need_sound_devices() -> None:
    check = sound_check(config(audio={"input": "none", "output": "none"}))
    assert check.ok and not check.required


def test_websocket_urls_are_probed_over_http() -> None:
    assert http_url("ws://lk.local:7880") == "http://lk.local:7880"
    assert http_url("wss://lk.example.com/x") == "https://lk.example.com/x"
    assert http_url("https://already") == "https://already"
