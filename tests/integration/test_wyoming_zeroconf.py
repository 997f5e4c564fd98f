"""The Wyoming services and the satellite announce themselves over mDNS the way Home Assistant's Wyoming
integration looks for them (`_wyoming._tcp.local.`), and withdraw when they stop: checked with zeroconf's
own resolver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

import pytest

from appliance.wyoming.announce import SERVICE_TYPE, announced_address
from appliance.wyoming.satellite import SatelliteServer
from appliance.wyoming.server import WyomingServer
from appliance.wyoming.services import WyomingServices

NAME = "appliance-zeroconf-test"


class Listener(Protocol):
    port: int

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


def services() -> tuple[Listener, str]:
    # No engines: an announcement needs none, and no client connects in this test.
    return WyomingServer(cast(WyomingServices, None), "0.0.0.0", 0, announce_as=NAME), NAME


def satellite() -> tuple[Listener, str]:
    listener = SatelliteServer("0.0.0.0", 0, "hey appliance", timeout_s=1, fallback=True, name=NAME, announce=True)
    return listener, f"{NAME}-satellite"  # beside the services' name, on the same device


@pytest.mark.parametrize("make", [services, satellite], ids=["services", "satellite"])
def test_a_listener_is_announced_over_mdns_and_withdrawn_on_close(make: Callable[[], tuple[Listener, str]]) -> None:
    address = announced_address("0.0.0.0")
    if address is None:
        pytest.skip("no network interface other than loopback: nothing to announce on")
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    async def main() -> None:
        listener, name = make()
        await listener.start()
        browser = AsyncZeroconf()
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}")
            assert await info.async_request(browser.zeroconf, 5000), "not announced"
            assert info.port == listener.port
            assert address in info.parsed_addresses()
            await listener.aclose()
            gone = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}")
            assert not await gone.async_request(browser.zeroconf, 1500), "still announced after close"
        finally:
            await listener.aclose()
            await browser.async_close()

    asyncio.run(main())
