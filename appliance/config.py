"""The one typed config: defaults (fully local), a TOML file, env overrides.

Each section is also the option group the part it configures takes (`EndpointingConfig` is what the
endpointer runs on, `InterruptionConfig` the barge-in judge, `TimeoutsConfig` the reply), so every
default is written once, here, with its documentation; nothing maps config onto options by position.

Precedence: defaults < TOML file < environment (`APPLIANCE_<SECTION>__<KEY>`).
Unknown keys and wrong types are errors that name the key and where it came
from; nothing is silently ignored. `effective_config` shows what is in force,
with secrets redacted.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "APPLIANCE_"
MQTT_NAME = r"^[A-Za-z0-9_-]{1,64}$"
"""A device id or group: one topic level with no wildcard, separator or control character, and an id
Home Assistant accepts."""
RESERVED_MQTT_NAMES = frozenset({"all", "group", "replies", "release", "rollout"})
_DESCRIPTOR = re.compile(r"^[a-z0-9_-]+/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$")


class ConfigError(ValueError):
    """Bad config; the message is one line naming the key."""


class _Section(BaseModel):
    # Numbers given where text is expected (a numeric password from the environment) stay text.
    # No inf or nan: they pass `gt=0` and would be published as non-standard JSON.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False)


def _chain(value: object) -> list[str]:
    if isinstance(value, str):
        chain = [value]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        chain = list(value)
    else:
        raise ValueError("must be a provider descriptor or a list of them")
    if not chain:
        raise ValueError("needs at least one provider descriptor")
    for item in chain:
        if not _DESCRIPTOR.match(item):
            raise ValueError(f"{item!r} is not a provider descriptor like 'local/whisper-tiny.en'")
    return chain


class AgentConfig(_Section):
    name: str = Field(
        default="assistant",
        min_length=1,
        description="A registered name, an entry point of `appliance.agents`, or an import path package.module:Name.",
    )
    instructions: str | None = Field(default=None, description="Overrides the agent's own instructions.")
    search_path: list[str] | None = Field(
        default=None,
        description="Folders where import paths are looked up too (default: the config file's folder).",
    )
    max_tool_steps: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Rounds of tool calls an LLM with native tool calling (a cloud one) may make in one turn.",
    )


Policy = Literal["local-first", "cloud-first"]


class SttConfig(_Section):
    provider: list[str] = ["local/whisper-tiny.en"]
    policy: Policy = "local-first"
    language: str | None = "en"

    _check = field_validator("provider", mode="before")(_chain)


class LlmConfig(_Section):
    provider: list[str] = ["local/smollm2-135m"]
    policy: Policy = "local-first"
    max_tokens: int = Field(default=80, ge=1, le=4096)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    context_tokens: int = Field(default=2048, ge=256, le=32768)

    _check = field_validator("provider", mode="before")(_chain)


class TtsConfig(_Section):
    provider: list[str] = ["local/piper-joe-medium"]
    policy: Policy = "local-first"
    speed: float = Field(default=1.0, gt=0.25, le=4.0, description="Speaking rate; 1.0 is the voice's own.")

    _check = field_validator("provider", mode="before")(_chain)


class VadConfig(_Section):
    """Voice activity: the model, and the hysteresis over its speech probability (`voice/activity.py`)."""

    provider: str = "local/silero-vad"

    @field_validator("provider")
    @classmethod
    def _descriptor(cls, value: str) -> str:
        return _chain(value)[0]

    activation: float = Field(default=0.5, gt=0.0, lt=1.0, description="Speech starts above this probability.")
    deactivation: float = Field(default=0.35, gt=0.0, lt=1.0, description="...and stops below this one.")
    min_speech_ms: int = Field(default=64, ge=0, le=2000, description="Voiced this long opens a turn (not a click).")

    @model_validator(mode="after")
    def _hysteresis(self) -> VadConfig:
        if self.deactivation > self.activation:
            raise ValueError("deactivation must not exceed activation")
        return self


class EndpointingConfig(_Section):
    """When the user's turn is over (`voice/endpointing.py`)."""

    min_silence_ms: int = Field(default=300, ge=50, le=10_000, description="Silence that ends a finished sentence.")
    max_silence_ms: int = Field(
        default=1500, ge=50, le=30_000, description="Silence that ends one that reads as unfinished."
    )
    max_turn_s: float = Field(default=30.0, gt=1.0, le=600.0, description="A turn that never stops is cut here.")
    preemptive: bool = Field(
        default=True, description="Start the reply on the speculative transcript, before the turn is committed."
    )

    @model_validator(mode="after")
    def _order(self) -> EndpointingConfig:
        if self.max_silence_ms < self.min_silence_ms:
            raise ValueError("max_silence_ms must be >= min_silence_ms")
        return self


class InterruptionConfig(_Section):
    """Barge-in: speech over the agent (`voice/barge_in.py`)."""

    enabled: bool = True
    min_speech_ms: int = Field(
        default=250, ge=0, le=5000, description="Speech over the agent this long interrupts; shorter is a cough."
    )
    resume_after_ms: int = Field(
        default=400, ge=0, le=5000, description="After a false interruption, quiet this long resumes the reply."
    )


class TimeoutsConfig(_Section):
    """How long the conversation waits for each engine before it gives up on a turn (`voice/reply.py`)."""

    stt_s: float = Field(default=10.0, gt=0)
    llm_first_token_s: float = Field(default=15.0, gt=0)
    tts_first_audio_s: float = Field(default=10.0, gt=0)
    message: str = Field(
        default="Sorry, I can't answer that right now.",
        description="Said when STT or the LLM times out; empty = stay quiet.",
    )


class ActivationMode(Enum):
    """When the appliance listens (`voice/activation.py`)."""

    ALWAYS = "always"
    WAKE = "wake"
    PUSH_TO_TALK = "push_to_talk"
    MUTED = "muted"


class ActivationConfig(_Section):
    """When the appliance listens, and the phrases that wake or stop it (`voice/activation.py`)."""

    mode: ActivationMode = ActivationMode.ALWAYS
    wake_phrase: str = Field(default="hey appliance", min_length=2)
    follow_up_s: float = Field(
        default=8.0, ge=0, le=120, description="After a reply, requests without the wake phrase for this long."
    )
    stop_phrases: list[str] = Field(
        default=["stop", "cancel", "be quiet", "never mind"], description="Said over the agent: it stops."
    )
    pipeline: Literal["local", "home-assistant", "auto"] = Field(
        default="local",
        description="Who answers a request: this device; Home Assistant's Assist pipeline, with the device as "
        "its satellite ([wyoming] satellite_port); or Home Assistant when it is connected and answers in time, "
        "else this device.",
    )


class FallbackConfig(_Section):
    """Per-request deadlines for a fallback chain (shorter than the session's: a slow cloud
    should hand over to local quickly) and how failed providers are probed."""

    stt_s: float = Field(default=5.0, gt=0)
    llm_first_token_s: float = Field(default=4.0, gt=0)
    tts_first_audio_s: float = Field(default=3.0, gt=0)
    probe_initial_s: float = Field(default=5.0, gt=0)
    probe_max_s: float = Field(default=120.0, gt=0)
    llm_race_s: float = Field(
        default=0.8,
        ge=0,
        le=30,
        description="A cloud LLM with no first token after this long (or after twice its usual time, if "
        "sooner) is raced by the next LLM of the chain; the first to answer is heard. 0: no racing.",
    )


class ProviderEndpoint(_Section):
    base_url: str | None = None
    api_key: str | None = None


class AudioConfig(_Section):
    volume: int = Field(default=100, ge=0, le=100, description="Speaker volume, 0-100.")
    input: Literal["device", "none"] = "device"
    output: Literal["device", "none"] = "device"
    input_device: str | int | None = Field(default=None, description="PortAudio device name (or part) or index.")
    output_device: str | int | None = None
    sample_rate: int | None = Field(default=None, ge=8000, le=192_000, description="Device rate; None = its own.")
    block_ms: int = Field(default=10, ge=5, le=20, description="Device block; small so playback stops at once.")
    echo_cancellation: bool = True
    speaker_buffer_ms: int = Field(default=40, ge=10, le=500)


class MqttConfig(_Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    device_id: str = Field(
        default="appliance-1",
        pattern=MQTT_NAME,
        description="One MQTT topic level and a Home Assistant id: letters, digits, '-' and '_' (1-64).",
    )
    group: str = Field(default="default", pattern=MQTT_NAME)
    topic_prefix: str = "appliance"
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    telemetry_interval_s: float = Field(default=30.0, gt=0)
    keepalive_s: int = Field(default=30, ge=2, le=3600, description="The offline will fires after 1.5x this.")
    queue_limit: int = Field(default=500, ge=1, description="Messages kept while disconnected (oldest dropped).")
    reply_prefix: str | None = Field(
        default=None,
        pattern=r"^[^#+\s]+$",
        description="Replies go only to response topics under this (default: <topic_prefix>/replies).",
    )
    session_expiry_s: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="The broker keeps commands for the device this long while it is away (0: none).",
    )

    @property
    def replies(self) -> str:
        return (self.reply_prefix or f"{self.topic_prefix}/replies").rstrip("/")

    @field_validator("device_id", "group")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        # `<prefix>/all/...`, `<prefix>/group/...` and `<prefix>/replies/...` are the fleet's own topics:
        # a device or group with one of these names would read and answer what is meant for others.
        if value.lower() in RESERVED_MQTT_NAMES or value.startswith("-"):
            raise ValueError(f"{value!r} is reserved (not {', '.join(sorted(RESERVED_MQTT_NAMES))}, nor a leading '-')")
        return value


class LiveKitConfig(_Section):
    url: str | None = Field(default=None, description="Server URL, ws:// or wss:// (http(s):// is accepted).")
    token: str | None = Field(default=None, description="A join token; or api_key + api_secret to mint one here.")
    api_key: str | None = None
    api_secret: str | None = Field(default=None, description="Inline, env:NAME or file:PATH.")
    room: str | None = Field(default=None, description="The room to auto-join, and the default for a handoff.")
    identity: str = Field(default="appliance", min_length=1, description="This device's identity in rooms.")
    auto_join: bool = Field(default=False, description="Join `room` at start and stay reachable there.")
    caller: str | None = Field(default=None, description="Talk only with this identity; None = the first caller.")
    operator_prefix: str = Field(default="operator-", description="Identities starting with this are operators.")
    operator_role: str = Field(default="operator", description="...as is a participant whose `role` attribute is this.")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    idle_timeout_s: float = Field(default=300.0, ge=0, description="Leave a room with no caller this long; 0 = never.")
    token_ttl_s: int = Field(default=6 * 3600, ge=60, description="Lifetime of a token minted on the device.")
    max_sessions: int = Field(default=1, ge=1, le=8, description="Conversations this box runs at once.")

    @model_validator(mode="after")
    def _joinable(self) -> LiveKitConfig:
        if self.auto_join:
            if not self.url:
                raise ValueError("auto_join needs livekit.url")
            if not self.token and not (self.room and self.api_key and self.api_secret):
                raise ValueError("auto_join needs livekit.token, or livekit.room with api_key and api_secret")
        return self


class WyomingConfig(_Section):
    """The Wyoming services Home Assistant adds: speech-to-text, text-to-speech, wake phrase and the agent
    as a conversation agent (`appliance/wyoming/`). Wyoming has no authentication: enable it on a trusted
    network only."""

    enabled: bool = False
    host: str = Field(
        default="0.0.0.0",
        min_length=1,
        description="Where to listen. Home Assistant usually runs on another box, so every interface; "
        "127.0.0.1 when it runs on this one.",
    )
    port: int = Field(
        default=10500,
        ge=0,
        le=65535,
        description="Beside the Wyoming add-ons' ports (Piper 10200, Whisper 10300, openWakeWord 10400) and "
        "clear of the satellite's 10700; 0 picks a free one.",
    )
    zeroconf: bool = Field(default=True, description="Announce the services over mDNS so Home Assistant finds them.")
    name: str | None = Field(
        default=None, pattern=MQTT_NAME, description="The name announced over mDNS (default: mqtt.device_id)."
    )
    max_audio_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="Audio one speech-to-text request may send; more is an error (a wake stream has no limit).",
    )
    satellite_port: int = Field(
        default=10700,
        ge=0,
        le=65535,
        description="Where Home Assistant connects to the device as a satellite (activation.pipeline not "
        "'local'); the Wyoming satellites' usual port. 0 picks a free one.",
    )
    satellite_timeout_s: float = Field(
        default=8.0,
        gt=0,
        le=120,
        description="How long a request sent to Home Assistant may go without its spoken answer starting; "
        "with activation.pipeline = 'auto' the device then answers itself.",
    )


class ModelsConfig(_Section):
    dir: Path = Path(".models")


class StateConfig(_Section):
    dir: Path = Field(default=Path(".state"), description="Where fleet-set config is kept (systemd's StateDirectory).")


class ComputeConfig(_Section):
    threads: int = Field(default=0, ge=0, le=256, description="CPU threads for inference; 0 = all usable cores.")


class FleetConfig(_Section):
    remote_keys: list[str] = Field(
        default=[],
        description="Hosts, credentials and paths config.set may change (dotted keys or prefixes: "
        "'providers', 'mqtt.host'); none by default. Only this device's own config sets it.",
    )


class UpdateConfig(_Section):
    """Which releases this device installs (the `update` command, install-release.sh); never set over MQTT."""

    trusted_keys: list[str] = Field(
        default=[],
        description="Ed25519 public keys a release must be signed by (one of them): base64, PEM, env:NAME or "
        "file:PATH. Several while a key is rotated. None: no release is installed.",
    )
    installer: str = Field(
        default="/opt/appliance/scripts/request-update.sh",
        description="What the update command runs with the verified release: on a device the request to the "
        "root unit; install-release.sh where the appliance may install itself.",
    )


class PrivacyConfig(_Section):
    publish_transcripts: bool = False


class AppConfig(_Section):
    agent: AgentConfig = AgentConfig()
    stt: SttConfig = SttConfig()
    llm: LlmConfig = LlmConfig()
    tts: TtsConfig = TtsConfig()
    vad: VadConfig = VadConfig()
    endpointing: EndpointingConfig = EndpointingConfig()
    interruption: InterruptionConfig = InterruptionConfig()
    activation: ActivationConfig = ActivationConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    providers: dict[str, ProviderEndpoint] = {}
    fallback: FallbackConfig = FallbackConfig()
    audio: AudioConfig = AudioConfig()
    mqtt: MqttConfig = MqttConfig()
    livekit: LiveKitConfig = LiveKitConfig()
    wyoming: WyomingConfig = WyomingConfig()
    models: ModelsConfig = ModelsConfig()
    compute: ComputeConfig = ComputeConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    fleet: FleetConfig = FleetConfig()
    state: StateConfig = StateConfig()
    update: UpdateConfig = UpdateConfig()


def load_config(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AppConfig:
    """Defaults, then the TOML file (if any), then fleet-set `overrides`, then env; validated as one."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    if overrides:
        data = deep_merge(data, overrides)
        source = f"{source} + fleet config"
    env_keys = _apply_env(data, os.environ if environ is None else environ)
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, env_keys)) from None
    # An agent module next to the config file is found by its import path; relative folders are the
    # config file's, not wherever the process happens to start.
    base = path.parent if path is not None else Path.cwd()
    folders = config.agent.search_path if config.agent.search_path is not None else ([] if path is None else ["."])
    config.agent.search_path = [str((base / folder).resolve()) for folder in folders]
    return config


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`patch` over `base`, table by table (a value replaces, a table merges)."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge `APPLIANCE_SECTION__KEY=value` into data; returns dotted key -> env var name."""
    applied: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(f"environment variable {name} is not of the form APPLIANCE_SECTION__KEY")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {'.'.join(parts[:-1])} is not a table")
            node = child
        node[parts[-1]] = _parse_env_value(environ[name])
        applied[".".join(parts)] = name
    return applied


def _parse_env_value(raw: str) -> Any:
    """A TOML literal when it parses as one (numbers, booleans, arrays, quoted strings), else the text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _describe(exc: ValidationError, source: str, env_keys: Mapping[str, str]) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
    origin = env_keys.get(key, source)
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if "input" in first and not isinstance(first["input"], dict):
            message += f" (got {first['input']!r})"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"config error in {origin}: {key}: {message}{more}"


_SECRET_KEYS = {"api_key", "api_secret", "password", "token"}


def effective_config(config: AppConfig) -> dict[str, Any]:
    """The config in force as plain data, with secrets redacted (safe to print or publish)."""
    redacted: dict[str, Any] = _redact(config.model_dump(mode="json"))
    return redacted


_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")
_TOKEN_PARAMETER = re.compile(r"(?P<name>\b(?:access_)?token=)[^&\s]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """`text` without what must never be published or logged: credentials inside URLs
    (`https://user:pw@host`), join tokens (JWTs) and `token=` query parameters."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme><redacted>@", text)
    text = _JWT.sub("<token>", text)
    return _TOKEN_PARAMETER.sub(r"\g<name><redacted>", text)


def _redact(node: Any) -> Any:
    if isinstance(node, str):
        return redact_text(node)
    if isinstance(node, dict):
        return {
            k: ("<redacted>" if k in _SECRET_KEYS and v is not None and not _is_reference(v) else _redact(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_redact(v) for v in node]
    return node


def _is_reference(value: Any) -> bool:
    """`env:NAME` / `file:/path` say where a secret lives, not what it is; showing them helps debugging."""
    return isinstance(value, str) and (value.startswith("env:") or value.startswith("file:"))
