"""`appliance fleet exporter`: Prometheus metrics of the fleet, from MQTT.

Telemetry and events, the bulk of the traffic, come through an MQTT v5 shared subscription
(`$share/<group>/appliance/+/telemetry`): the broker hands each message to one exporter of the group,
so several exporters split the load. Status comes through a plain subscription in every exporter: it
is retained and changes only when a device comes or goes, and a device's online and offline messages
must reach the same exporter for "devices online" to be right. A lost broker is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from appliance.aio import Backoff
from appliance.fleet.metrics import FleetMetrics
from appliance.fleet.operator import Operator

log = logging.getLogger(__name__)


def subscriptions(prefix: str, share_group: str) -> list[str]:
    shared = f"$share/{share_group}/{prefix}"
    return [f"{prefix}/+/status", f"{shared}/+/telemetry", f"{shared}/+/events"]


async def feed_metrics(
    operator: Operator,
    metrics: FleetMetrics,
    share_group: str,
    stop: asyncio.Event,
    on_status: Callable[[str], None] = lambda _status: None,
) -> None:
    """Until `stop`: every message on the exporter's subscriptions into `metrics`."""
    import aiomqtt

    backoff = Backoff(1.0, 30.0)
    while not stop.is_set():
        try:
            async with operator.client() as client:
                for topic_filter in subscriptions(operator.mqtt.topic_prefix, share_group):
                    await client.subscribe(topic_filter, qos=0)
                backoff.reset()
                on_status("connected")
                reading = asyncio.create_task(_read(client, metrics))
                stopping = asyncio.create_task(stop.wait())
                try:
                    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (reading, stopping):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task  # a broken connection's MqttError comes out here
        except aiomqtt.MqttError as exc:
            delay = backoff.next()
            on_status(f"disconnected: {exc}")
            log.warning(
                "exporter: broker %s:%d: %s (retrying in %.1f s)", operator.mqtt.host, operator.mqtt.port, exc, delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


async def _read(client: object, metrics: FleetMetrics) -> None:
    async for message in client.messages:  # type: ignore[attr-defined]
        metrics.receive(str(message.topic), bytes(message.payload or b""))
