"""Where a room is and how this device gets in: a URL and a token, given or minted here.

A token handed over (config, or an MQTT handoff) is used as is. With an API key and
secret the device mints its own, fresh for every attempt, so a rejoin after a long
outage never presents an expired one.

A token handed over decides who the device is in the room and which room it is: the
server admits nothing else. So its identity wins over `livekit.identity` (a backend
that mints one identity per dispatch is normal, and the device cannot change a signed
token), and a `room` that contradicts the token is refused rather than half-believed.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from appliance.config import LiveKitConfig
from appliance.providers.secrets import SecretError, resolve_secret

log = logging.getLogger(__name__)


class RoomConfigError(ValueError):
    """Not enough to join a room (no URL, no token and no key to mint one); one line."""


@dataclass(frozen=True)
class RoomCredentials:
    url: str
    room: str | None
    identity: str
    """Who the device will be in the room: the given token's identity, else `livekit.identity`."""
    token: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    ttl_s: int = 6 * 3600

    def token_for_attempt(self) -> str:
        """The given token, or a freshly minted one."""
        if self.token:
            return self.token
        if not (self.api_key and self.api_secret and self.room):
            raise RoomConfigError("no livekit token, and no api_key/api_secret and room to mint one")
        from livekit import api

        grants = api.VideoGrants(
            room_join=True, room=self.room, can_publish=True, can_subscribe=True, can_update_own_metadata=True
        )
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(self.identity)
            .with_name(self.identity)
            .with_kind("agent")  # callers' apps and other agents can tell the device from a person
            .with_grants(grants)
            .with_ttl(timedelta(seconds=self.ttl_s))
            .to_jwt()
        )


def room_credentials(
    config: LiveKitConfig,
    url: str | None = None,
    token: str | None = None,
    room: str | None = None,
) -> RoomCredentials:
    """Credentials for a room: the arguments (an MQTT handoff) win over the config."""
    url = url or config.url
    if not url:
        raise RoomConfigError("no LiveKit URL: give one in the command or set livekit.url")
    try:
        api_secret = resolve_secret(config.api_secret)
        given_token = token or resolve_secret(config.token)
    except SecretError as exc:
        raise RoomConfigError(f"livekit: {exc}") from None
    claims = token_claims(given_token) if given_token else {}
    token_room = _text_claim(claims.get("video", {}), "room")
    if room and token_room and room != token_room:
        raise RoomConfigError(f"the token is for room {token_room!r}, not {room!r}: give the room's own token")
    room = token_room or room or config.room
    identity = _text_claim(claims, "sub") or config.identity
    if identity != config.identity:
        log.info(
            "livekit: the token admits this device as %r, not livekit.identity %r: it joins as the token says",
            identity,
            config.identity,
        )
    if not given_token and not (config.api_key and api_secret):
        raise RoomConfigError("no LiveKit token: give one, or set livekit.api_key and livekit.api_secret to mint one")
    if not given_token and not room:
        raise RoomConfigError("no room name: give one, or set livekit.room")
    return RoomCredentials(
        url=websocket_url(url),
        room=room,
        identity=identity,
        token=given_token,
        api_key=config.api_key,
        api_secret=api_secret,
        ttl_s=config.token_ttl_s,
    )


def room_in_token(token: str) -> str | None:
    """The room a join token is for (read, not verified: the server verifies it), or None."""
    return _text_claim(token_claims(token).get("video", {}), "room")


def token_claims(token: str) -> dict[str, object]:
    """A JWT's claims, read but not verified (the server verifies them); {} when unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _text_claim(claims: object, name: str) -> str | None:
    value = claims.get(name) if isinstance(claims, dict) else None
    return value if isinstance(value, str) and value else None


def websocket_url(url: str) -> str:
    """LiveKit's signalling is a websocket; accept the http(s) form people copy from a dashboard."""
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if not url.startswith(("ws://", "wss://")):
        raise RoomConfigError(f"LiveKit URL must start with ws://, wss://, http:// or https://, got {url!r}")
    return url


def http_url(url: str) -> str:
    """The same server's HTTP address (a health check answers there)."""
    ws = websocket_url(url)
    return "http://" + ws[len("ws://") :] if ws.startswith("ws://") else "https://" + ws[len("wss://") :]
