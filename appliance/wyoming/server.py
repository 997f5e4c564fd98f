"""The Wyoming server in the appliance's process: a TCP listener, one `Connection` per client, and an
mDNS announcement (`announce.py`) so Home Assistant's Wyoming integration discovers the services by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from wyoming.event import Event, async_write_event

from appliance.wyoming.announce import Announcement
from appliance.wyoming.connection import Connection
from appliance.wyoming.services import WyomingServices
from appliance.wyoming.wire import MAX_LINE, BadEvent, BrokenStream, read_event


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
        self._announcement = Announcement("wyoming")

    async def start(self) -> None:
        """Listening (OSError if the address cannot be had); `port` is the real one when 0 was asked for."""
        self._server = await asyncio.start_server(self._accepted, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.announce_as:
            await self._announcement.announce(self.announce_as, self.host, self.port)

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
        await self.aclose()

    async def aclose(self) -> None:
        await self._announcement.withdraw()
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
