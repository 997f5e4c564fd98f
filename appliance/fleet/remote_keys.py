"""Which config keys the fleet may change over MQTT.

A `config.set` that could point a secret at a local file (`mqtt.password = "file:/etc/shadow"`) and the
broker at a host of the sender's choice, then ask for a `restart`, would send that file there. So
secret references, hosts and paths are the device's own business: the keys below (and any value that
is a secret reference, `env:` or `file:`) are refused unless the device's own config lists them in
`[fleet] remote_keys`. `fleet` itself and `update` (the keys a
release must be signed by) are never settable remotely.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

PROTECTED = (
    "mqtt",
    "state",
    "models.dir",
    "agent.search_path",
    "providers",
    "livekit.url",
    "livekit.token",
    "livekit.api_key",
    "livekit.api_secret",
    "activation.pipeline",  # not "local": opens the satellite listener, unauthenticated like `wyoming`
    "wyoming",  # a listener with no authentication, on every interface by default: the device's own choice
)
"""Hosts, credentials and paths (prefixes of dotted keys): `providers` covers every base_url and api_key."""
NEVER = ("fleet", "update")  # update: whoever may add a trusted key may install anything


def dotted_keys(patch: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in patch.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from dotted_keys(value, f"{path}.")
        else:
            yield path, value


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def forbidden_keys(patch: Mapping[str, Any], remote_keys: Sequence[str]) -> list[str]:
    """The keys of `patch` the fleet may not set on this device (empty: the patch may go ahead)."""
    refused = []
    for key, value in dotted_keys(patch):
        reference = isinstance(value, str) and value.startswith(("env:", "file:"))
        if _under(key, NEVER) or ((_under(key, PROTECTED) or reference) and not _under(key, remote_keys)):
            refused.append(key)
    return refused
