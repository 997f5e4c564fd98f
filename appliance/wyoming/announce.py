"""An mDNS announcement of a Wyoming listener, so Home Assistant's Wyoming integration discovers it by itself
(the services and the satellite alike).

Made with `zeroconf` directly, the way `wyoming.zeroconf` makes it (service type `_wyoming._tcp.local.`, the
name Home Assistant shows), because that helper can register but not unregister: a device that stops must
withdraw its announcement, or Home Assistant keeps offering a dead address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from typing import Any

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
MDNS_GROUP = "224.0.0.251"


class Announcement:
    """`await announce(...)` once the listener has its port; `await withdraw()` when it closes."""

    def __init__(self, what: str) -> None:
        self.what = what
        """What is announced, for the log: "wyoming", "satellite"."""
        self._zeroconf: Any = None

    async def announce(self, name: str, host: str, port: int) -> bool:
        """True once announced; a loopback host, no multicast or a name taken is said once, and the
        listener still answers whoever knows its address."""
        address = announced_address(host)
        if address is None:
            log.warning("%s: not announced over mDNS: %s is reachable from this box only", self.what, host)
            return False
        try:
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            zeroconf = AsyncZeroconf()
            info = AsyncServiceInfo(
                SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", addresses=[socket.inet_aton(address)], port=port
            )
            await zeroconf.async_register_service(info)
        except Exception as exc:  # no multicast here, or the name is taken
            log.warning("%s: not announced over mDNS (%s)", self.what, exc)
            return False
        self._zeroconf = zeroconf
        log.info("%s: announced as %s on %s:%d", self.what, name, address, port)
        return True

    async def withdraw(self) -> None:
        if self._zeroconf is not None:
            zeroconf, self._zeroconf = self._zeroconf, None
            with contextlib.suppress(Exception):
                await zeroconf.async_unregister_all_services()
                await zeroconf.async_close()


def announced_address(host: str) -> str | None:
    """The IPv4 address to announce: the configured one, or for every interface the one this box reaches the
    mDNS group from; None for loopback (nobody else can connect there)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name: resolving it here could block; configure an address to announce
    if ip.is_loopback or ip.version != 4:
        return None
    if not ip.is_unspecified:
        return host
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((MDNS_GROUP, 1))  # no packet is sent: this only asks the routing table
        found: str = probe.getsockname()[0]
        return None if found.startswith("127.") else found
    except OSError:
        return None
    finally:
        probe.close()
