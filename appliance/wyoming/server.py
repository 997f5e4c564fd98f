"""The Wyoming server in the appliance's process: a TCP listener, one `Connection` per client, and an
mDNS announcement so Home Assistant's Wyoming integration discovers the services by itself.

The announcement is made with `zeroconf` directly, the way `wyoming.zeroconf` makes it (service type
`_wyoming._tcp.local.`, the name Home Assistant shows), because that helper can register but not unregister:
a device that stops must withdraw its services, or Home Assistant keeps offering a dead address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any

from wyoming.event import Event, async_write_event

from appliance.wyoming.connection import Connection
from appliance.wyoming.services import WyomingServices
from appliance.wyoming.wire import MAX_LINE, BadEvent, BrokenStream, read_event

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
MDNS_GROUP = "224.0.0.251"


class WyomingServer:
    def __init__(self, services: WyomingServices, host: str, port: int, announce_as: str | None = None) -> None:
        self.services = services
        self.host = host
        self.port = port
        self.announce_as = announce_as
        """The mDNS name to announce the services under; None: no announcement."""
        self.on_connection: Callable[[Connection], None] | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._zeroconf: Any = None

    async def start(self) -> None:
        """Listening (OSError if the address cannot be had); `port` is the real one when 0 was asked for."""
        self._server = await asyncio.start_server(self._accepted, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.announce_as:
            await self._announce(self.announce_as)

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
        await self.aclose()

    async def aclose(self) -> None:
        if self._zeroconf is not None:
            zeroconf, self._zeroconf = self._zeroconf, None
            with contextlib.suppress(Exception):
                await zeroconf.async_unregister_all_services()
                await zeroconf.async_close()
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer), name="wyoming-client")
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def write(event: Event) -> None:
            await async_write_event(event, writer)

        connection = Connection(self.services, write)
        if self.on_connection is not None:
            self.on_connection(connection)
        try:
            while True:
                try:
                    event = await read_event(reader)
                except BrokenStream as exc:
                    await connection.error(str(exc), "bad_stream")
                    break
                except BadEvent as exc:
                    await connection.error(str(exc), "bad_event")
                    continue
                if event is None or not await connection.handle(event):
                    break
        except (ConnectionError, OSError):
            pass  # the client went away mid-answer
        finally:
            await connection.aclose()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _announce(self, name: str) -> None:
        address = announced_address(self.host)
        if address is None:
            log.warning("wyoming: not announced over mDNS: %s is reachable from this box only", self.host)
            return
        try:
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            zeroconf = AsyncZeroconf()
            info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{name}.{SERVICE_TYPE}",
                addresses=[socket.inet_aton(address)],
                port=self.port,
            )
            await zeroconf.async_register_service(info)
        except Exception as exc:  # no multicast here, or the name is taken: the services still answer
            log.warning("wyoming: not announced over mDNS (%s)", exc)
            return
        self._zeroconf = zeroconf
        log.info("wyoming: announced as %s on %s:%d", name, address, self.port)


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
