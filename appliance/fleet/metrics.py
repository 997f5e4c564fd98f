"""The exporter's metrics: what devices publish (status, telemetry, events), as Prometheus metrics.

Status is the whole fleet's, in every exporter (it is small and retained: each exporter can say how many
devices are online per group and version). Telemetry and events are the load, split between exporters by
a shared subscription: per-device gauges come from whichever exporter last saw that device (query them
with `max by (device)`), and the counters from events add up across exporters (`sum`), each message
being counted by exactly one. A device's telemetry is dropped once it goes offline or is not refreshed
within `stale_s`.

Fed from the asyncio side and read by prometheus_client's HTTP thread at each scrape, under one lock.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Voice-to-voice: under 0.75 s feels live, over 2 s feels broken."""


class FleetMetrics:
    def __init__(self, prefix: str, stale_s: float = 120.0) -> None:
        self.prefix = prefix
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self._status: dict[str, dict[str, Any]] = {}
        self._telemetry: dict[str, tuple[float, dict[str, Any]]] = {}
        self._messages: Counter[str] = Counter()
        self._turns: Counter[str] = Counter()
        self._latency: dict[str, list[int]] = {}
        """group -> count per bucket (the last one is +Inf), and the sum in ms as the final item."""
        self._errors: Counter[tuple[str, str]] = Counter()
        self._unavailable: Counter[tuple[str, str, str]] = Counter()
        self._races: Counter[tuple[str, str, str]] = Counter()

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    # ----- ingest --------------------------------------------------------------------------------

    def receive(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self.prefix:
            return
        device, kind = parts[1], parts[2]
        if kind not in ("status", "telemetry", "events"):
            return
        try:
            data = json.loads(payload) if payload else None
        except ValueError:
            data = None
        with self._lock:
            self._messages[kind] += 1
            if kind == "status":
                if isinstance(data, dict):
                    self._status[device] = data
                else:
                    self._status.pop(device, None)  # cleared: decommissioned
                if not isinstance(data, dict) or data.get("state") != "online":
                    self._telemetry.pop(device, None)
            elif kind == "telemetry" and isinstance(data, dict):
                self._telemetry[device] = (time.monotonic(), data)
            elif kind == "events" and isinstance(data, dict):
                self._event(self._group(device), data)

    def _group(self, device: str) -> str:
        return str(self._status.get(device, {}).get("group", ""))

    def _event(self, group: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "turn":
            self._turns[group] += 1
            value = _table(event, "latency_ms").get("voice_to_voice")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                counts = self._latency.setdefault(group, [0] * (len(LATENCY_BUCKETS_S) + 2))
                counts[next((i for i, b in enumerate(LATENCY_BUCKETS_S) if value / 1000 <= b), -2)] += 1
                counts[-1] += int(value)
        elif kind == "error":
            self._errors[(group, str(event.get("source", "")))] += 1
        elif kind == "provider" and event.get("available") is False:
            self._unavailable[(group, str(event.get("stage", "")), str(event.get("provider", "")))] += 1
        elif kind == "race":
            self._races[(group, str(event.get("stage", "")), str(event.get("winner", "")))] += 1

    # ----- a scrape ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            for device in [d for d, (seen, _) in self._telemetry.items() if now - seen > self.stale_s]:
                del self._telemetry[device]
            yield from self._fleet_metrics()
            yield from self._device_metrics()
            yield from self._event_metrics()

    def _fleet_metrics(self) -> Iterator[Metric]:
        online = GaugeMetricFamily(
            "appliance_devices_online", "Devices whose status is online", labels=["group", "version"]
        )
        known = GaugeMetricFamily(
            "appliance_devices", "Devices with a retained status, online or not", labels=["group"]
        )
        per_version: Counter[tuple[str, str]] = Counter()
        per_group: Counter[str] = Counter()
        for status in self._status.values():
            group = str(status.get("group", ""))
            per_group[group] += 1
            if status.get("state") == "online":
                per_version[(group, str(status.get("version", "")))] += 1
        for (group, version), count in sorted(per_version.items()):
            online.add_metric([group, version], count)
        for group, count in sorted(per_group.items()):
            known.add_metric([group], count)
        messages = CounterMetricFamily(
            "appliance_exporter_messages", "Messages this exporter handled, by topic kind", labels=["kind"]
        )
        for kind, count in sorted(self._messages.items()):
            messages.add_metric([kind], count)
        yield from (online, known, messages)

    def _device_metrics(self) -> Iterator[Metric]:
        labels = ["device", "group"]
        cpu = GaugeMetricFamily(
            "appliance_device_cpu_percent", "Process CPU of the device (100 = one core)", labels=labels
        )
        rss = GaugeMetricFamily("appliance_device_rss_bytes", "Resident memory of the device process", labels=labels)
        latency = GaugeMetricFamily(
            "appliance_device_voice_to_voice_seconds",
            "Voice-to-voice latency of the device's recent turns",
            labels=[*labels, "quantile"],
        )
        races = GaugeMetricFamily(
            "appliance_device_races_won",
            "Turns where a late LLM was raced, by who answered first, since the device started",
            labels=[*labels, "winner"],
        )
        provider = GaugeMetricFamily(
            "appliance_device_provider_info",
            "The provider a device uses first, per stage",
            labels=[*labels, "stage", "provider"],
        )
        for device, (_, data) in sorted(self._telemetry.items()):
            group = self._group(device)
            if _number(data.get("cpu_percent")):
                cpu.add_metric([device, group], data["cpu_percent"])
            if _number(data.get("rss_mb")):
                rss.add_metric([device, group], data["rss_mb"] * 1024 * 1024)
            v2v = _table(data, "voice_to_voice_ms")
            for quantile, key in (("0.5", "p50"), ("0.95", "p95")):
                if _number(v2v.get(key)):
                    latency.add_metric([device, group, quantile], v2v[key] / 1000)
            won = _table(data, "races_won")
            for winner, count in sorted(won.items()):
                if _number(count):
                    races.add_metric([device, group, str(winner)], count)
            providers = _table(data, "providers")
            for stage, name in sorted(providers.items()):
                provider.add_metric([device, group, str(stage), str(name)], 1)
        yield from (cpu, rss, latency, races, provider)

    def _event_metrics(self) -> Iterator[Metric]:
        turns = CounterMetricFamily("appliance_turns", "Turns reported on events", labels=["group"])
        for group, count in sorted(self._turns.items()):
            turns.add_metric([group], count)
        histogram = HistogramMetricFamily(
            "appliance_voice_to_voice_seconds", "Voice-to-voice latency of turns reported on events", labels=["group"]
        )
        for group, counts in sorted(self._latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts[:-1], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            histogram.add_metric([group], buckets, counts[-1] / 1000)
        errors = CounterMetricFamily(
            "appliance_errors", "Error events, by the part that failed", labels=["group", "source"]
        )
        for (group, source), count in sorted(self._errors.items()):
            errors.add_metric([group, source], count)
        unavailable = CounterMetricFamily(
            "appliance_provider_unavailable",
            "A provider went unavailable (the next in its chain took over)",
            labels=["group", "stage", "provider"],
        )
        for key, count in sorted(self._unavailable.items()):
            unavailable.add_metric(list(key), count)
        races = CounterMetricFamily(
            "appliance_races",
            "A late provider was raced by the next; who answered first",
            labels=["group", "stage", "winner"],
        )
        for key, count in sorted(self._races.items()):
            races.add_metric(list(key), count)
        yield from (turns, histogram, errors, unavailable, races)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` if it is a JSON object, else an empty one (a device's payload is not trusted)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}
