"""Room credentials: what a handoff brings wins over config; tokens are minted fresh when we hold a key."""

from __future__ import annotations

import jwt
import pytest

from appliance.config import LiveKitConfig
from appliance.transports.livekit_auth import (
    RoomConfigError,
    http_url,
    room_credentials,
    room_in_token,
    websocket_url,
)

SECRET = "a-secret-long-enough-for-hmac-sha256-signing"


def minting() -> LiveKitConfig:
    return LiveKitConfig(url="wss://lk.example.com", api_key="key", api_secret=SECRET, room="kitchen", identity="box-7")


def test_a_minted_token_admits_this_device_to_its_room_as_an_agent() -> None:
    credentials = room_credentials(minting())
    claims = jwt.decode(credentials.token_for_attempt(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "box-7" and claims["iss"] == "key"
    assert claims["video"]["room"] == "kitchen" and claims["video"]["roomJoin"] is True
    assert claims["kind"] == "agent"
    assert claims["exp"] - claims["nbf"] == 6 * 3600


def test_the_secret_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_SECRET", SECRET)
    config = minting().model_copy(update={"api_secret": "env:LK_SECRET"})
    token = room_credentials(config).token_for_attempt()
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["video"]["room"] == "kitchen"
    monkeypatch.delenv("LK_SECRET")
    with pytest.raises(RoomConfigError, match="LK_SECRET is not set"):
        room_credentials(config)


def test_a_handoff_token_and_url_win_and_the_room_is_read_from_the_token() -> None:
    given = jwt.encode({"video": {"room": "hall", "roomJoin": True}, "sub": "x"}, SECRET, algorithm="HS256")
    credentials = room_credentials(minting(), url="https://other.example.com", token=given)
    assert credentials.url == "wss://other.example.com"
    assert credentials.token_for_attempt() == given
    assert credentials.room == "hall"


def test_missing_pieces_are_one_clear_line() -> None:
    with pytest.raises(RoomConfigError, match="no LiveKit URL"):
        room_credentials(LiveKitConfig())
    with pytest.raises(RoomConfigError, match="no LiveKit token"):
        room_credentials(LiveKitConfig(url="ws://h:7880", room="r"))
    with pytest.raises(RoomConfigError, match="no room name"):
        room_credentials(LiveKitConfig(url="ws://h:7880", api_key="k", api_secret=SECRET))
    with pytest.raises(RoomConfigError, match="must start with"):
        websocket_url("h:7880")


def test_urls_and_tokens_are_read_leniently() -> None:
    assert websocket_url("http://127.0.0.1:7880") == "ws://127.0.0.1:7880"
    assert http_url("wss://lk.example.com") == "https://lk.example.com"
    assert room_in_token("not-a-jwt") is None
    assert room_in_token("a.b.c") is None


def test_auto_join_without_a_way_in_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"auto_join needs livekit\.url"):
        LiveKitConfig(auto_join=True)
    with pytest.raises(ValueError, match=r"auto_join needs livekit\.token"):
        LiveKitConfig(auto_join=True, url="ws://h:7880", room="r")


def token(room: str, identity: str) -> str:
    return jwt.encode({"video": {"room": room, "roomJoin": True}, "sub": identity}, SECRET, algorithm="HS256")


def test_a_given_token_decides_who_the_device_is_whatever_livekit_identity_says() -> None:
    assert room_credentials(minting(), token=token("hall", "lobby-agent")).identity == "lobby-agent"
    assert room_credentials(minting()).identity == "box-7"  # minting its own: the configured identity


def test_a_room_that_contradicts_the_token_is_refused_naming_both() -> None:
    with pytest.raises(RoomConfigError, match="the token is for room 'hall', not 'porch'"):
        room_credentials(minting(), token=token("hall", "box-7"), room="porch")
    assert room_credentials(minting(), token=token("hall", "box-7"), room="hall").room == "hall"
