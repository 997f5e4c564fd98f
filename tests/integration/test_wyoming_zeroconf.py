"""The Wyoming services and the satellite announce themselves over mDNS the way Home Assistant's Wyoming
integration looks for them (`_wyoming._tcp.local.`), and withdraw when they stop: checked with zeroconf's
own resolver."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from appliance.wyoming.announce import SERVICE_TYPE, announced_address
from appliance.wyoming.satellite import SatelliteServer
from appliance.wyoming.server import WyomingServer
from appliance.wyoming.services import WyomingServices

NAME = "appliance-zeroconf-test"


def test_the_services_are_announced_over_mdns_and_withdrawn_on_close() -> None:
    address = announced_address("0.0.0.0")
    if address is None:
        pytest.skip("no network interface other than loopback: nothing to announce on")
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    async def main() -> None:
        # No engines: an announcement needs none, and no client connects in this test.
        server = WyomingServer(cast(WyomingServices, None), "0.0.0.0", 0, announce_as=NAME)
        await server.start()
        browser = AsyncZeroconf()
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, f"{NAME}.{SERVICE_TYPE}")
            assert await info.async_request(browser.zeroconf, 5000), "not announced"
            assert info.port == server.port
            assert address in info.parsed_addresses()
            await server.aclose()
            gone = AsyncServiceInfo(SERVICE_TYPE, f"{NAME}.{SERVICE_TYPE}")
            assert not await gone.async_request(browser.zeroconf, 1500), "still announced after close"
        finally:
            await server.aclose()
            await browser.async_close()

    asyncio.run(main())


def test_the_satellite_is_announced_beside_the_services_and_withdrawn_on_close() -> None:
    address = announced_address("0.0.0.0")
    if address is None:
        pytest.skip("no network interface other than loopback: nothing to announce on")
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    name = f"{NAME}-satellite"

    async def main() -> None:
        satellite = SatelliteServer("0.0.0.0", 0, "hey appliance", timeout_s=1, fallback=True, name=NAME, announce=True)
        await satellite.start()
        browser = AsyncZeroconf()
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}")
            assert await info.async_request(browser.zeroconf, 5000), "not announced"
            assert info.port == satellite.port
            assert address in info.parsed_addresses()
            await satellite.aclose()
            gone = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}")
            assert not await gone.async_request(browser.zeroconf, 1500), "still announced after close"
        finally:
            await satellite.aclose()
            await browser.async_close()

    asyncio.run(main())
