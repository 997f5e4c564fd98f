"""Config: local defaults < TOML file < env, and errors that name the key and where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, effective_config, load_config


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_providers_are_all_local() -> None:
    config = load_config(environ={})
    descriptors = [
        *config.stt.provider,
        *config.llm.provider,
        *config.tts.provider,
        config.vad.provider,
    ]
    assert descriptors
    assert all(d.startswith("local/") for d in descriptors)


def test_default_mqtt_is_disabled() -> None:
    assert load_config(environ={}).mqtt.enabled is False


def test_toml_file_overrides_defaults(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[llm]\nmax_tokens = 120\ntemperature = 0.7\n")
    config = load_config(path, environ={})
    assert config.llm.max_tokens == 120
    assert config.llm.temperature == 0.7
    assert config.llm.context_tokens == 2048


def test_env_overrides_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[llm]\nmax_tokens = 120\n")
    config = load_config(path, environ={"APPLIANCE_LLM__MAX_TOKENS": "40"})
    assert config.llm.max_tokens == 40


def test_env_override_works_without_a_file() -> None:
    config = load_config(environ={"APPLIANCE_MQTT__ENABLED": "true"})
    assert config.mqtt.enabled is True


def test_unrelated_env_vars_are_ignored() -> None:
    config = load_config(environ={"HOME": "/root", "APPLIANCE_DEBUG": "1"})
    assert config == load_config(environ={})


def test_unknown_key_in_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[llm]\nmax_tokenz = 40\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert "llm.max_tokenz" in message
    assert str(path) in message
    assert "unknown key" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[llm]\nmax_tokens = "lots"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "llm.max_tokens" in str(info.value)
    assert "'lots'" in str(info.value)


def test_unknown_env_key_names_the_env_var() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"APPLIANCE_LLM__MAX_TOKENZ": "40"})
    assert "APPLIANCE_LLM__MAX_TOKENZ" in str(info.value)
    assert "llm.max_tokenz" in str(info.value)


def test_malformed_env_var_name_is_rejected() -> None:
    with pytest.raises(ConfigError, match="APPLIANCE_LLM__"):
        load_config(environ={"APPLIANCE_LLM__": "40"})


def test_bad_provider_descriptor_names_the_key(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[stt]\nprovider = "whisper"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "stt.provider" in str(info.value)
    assert "not a provider descriptor" in str(info.value)


def test_empty_provider_chain_is_rejected(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[tts]\nprovider = []\n")
    with pytest.raises(ConfigError, match=r"tts\.provider"):
        load_config(path, environ={})


def test_non_string_provider_in_file_is_a_config_error(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[llm]\nprovider = 5\n")
    with pytest.raises(ConfigError, match=r"llm\.provider"):
        load_config(path, environ={})


def test_non_string_provider_from_env_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="APPLIANCE_STT__PROVIDER"):
        load_config(environ={"APPLIANCE_STT__PROVIDER": "5"})


def test_single_descriptor_becomes_a_one_element_list(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[llm]\nprovider = "openai/gpt-4o-mini"\n')
    assert load_config(path, environ={}).llm.provider == ["openai/gpt-4o-mini"]


def test_descriptor_list_keeps_its_order(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[llm]\nprovider = ["local/smollm2-135m", "openai/gpt-4o-mini"]\n')
    assert load_config(path, environ={}).llm.provider == ["local/smollm2-135m", "openai/gpt-4o-mini"]


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[llm\nmax_tokens = = 4\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)


def test_max_silence_below_min_silence_is_rejected(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[endpointing]\nmin_silence_ms = 800\nmax_silence_ms = 400\n")
    with pytest.raises(ConfigError, match="max_silence_ms must be >= min_silence_ms") as info:
        load_config(path, environ={})
    assert "endpointing" in str(info.value)


def test_effective_config_redacts_an_inline_api_key(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[providers.openai]\napi_key = "sk-very-secret"\n')
    shown = effective_config(load_config(path, environ={}))
    assert shown["providers"]["openai"]["api_key"] == "<redacted>"
    assert "sk-very-secret" not in repr(shown)


def test_effective_config_shows_an_env_reference(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[providers.openai]\napi_key = "env:OPENAI_API_KEY"\n')
    shown = effective_config(load_config(path, environ={}))
    assert shown["providers"]["openai"]["api_key"] == "env:OPENAI_API_KEY"


def test_effective_config_leaves_unset_secrets_as_none() -> None:
    shown = effective_config(load_config(environ={}))
    assert shown["mqtt"]["password"] is None


def test_credentials_in_urls_and_tokens_never_reach_the_reported_config_or_a_room_error() -> None:
    from appliance.config import effective_config, redact_text
    from appliance.transports.livekit_room import RoomError

    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3gifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    config = load_config(
        environ={
            "APPLIANCE_PROVIDERS__ACME__BASE_URL": '"https://user:hunter2@llm.example.com/v1"',
            "APPLIANCE_LIVEKIT__URL": '"wss://lk.example.com"',
        }
    )
    shown = str(effective_config(config))
    assert "hunter2" not in shown and "https://<redacted>@llm.example.com/v1" in shown
    error = RoomError(f"cannot join wss://lk.example.com/rtc?access_token={jwt}&auto_subscribe=1: 401")
    assert jwt not in str(error) and "access_token=<redacted>&auto_subscribe=1" in str(error)
    assert redact_text(f"token {jwt} refused") == "token <token> refused"
    assert redact_text("https://lk.example.com/rtc?room=a") == "https://lk.example.com/rtc?room=a"  # nothing to hide


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("DEVICE_ID", "all", "reserved"),
        ("DEVICE_ID", "Replies", "reserved"),
        ("GROUP", "group", "reserved"),
        ("DEVICE_ID", "-x", "reserved"),
        ("DEVICE_ID", "kitchen/1", "pattern"),
        ("DEVICE_ID", "a+b", "pattern"),
        ("GROUP", "x" * 65, "pattern"),
    ],
)
def test_a_device_id_or_group_that_would_clash_with_fleet_topics_is_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(environ={f"APPLIANCE_MQTT__{key}": value})
    assert f"mqtt.{key.lower()}" in str(error.value) and message in str(error.value)
    assert load_config(environ={f"APPLIANCE_MQTT__{key}": "kitchen_1-b"})
