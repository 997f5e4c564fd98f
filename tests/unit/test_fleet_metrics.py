"""The exporter's metrics from the payloads devices publish, rendered as Prometheus scrapes them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from appliance.fleet.metrics import FleetMetrics


def scrape(metrics: FleetMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.registry()).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def send(metrics: FleetMetrics, device: str, kind: str, payload: Any) -> None:
    metrics.receive(f"appliance/{device}/{kind}", json.dumps(payload).encode())


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def metrics() -> FleetMetrics:
    metrics = FleetMetrics("appliance")
    send(metrics, "k1", "status", {"state": "online", "group": "kitchen", "version": "0.2.0"})
    send(metrics, "k2", "status", {"state": "online", "group": "kitchen", "version": "0.1.0"})
    send(metrics, "h1", "status", {"state": "offline", "group": "hall", "version": "0.2.0"})
    return metrics


def test_devices_online_are_counted_per_group_and_version(metrics: FleetMetrics) -> None:
    samples = scrape(metrics)
    assert value(samples, "appliance_devices_online", group="kitchen", version="0.2.0") == 1
    assert value(samples, "appliance_devices_online", group="kitchen", version="0.1.0") == 1
    assert value(samples, "appliance_devices_online", group="hall", version="0.2.0") is None
    assert value(samples, "appliance_devices", group="hall") == 1
    metrics.receive("appliance/h1/status", b"")  # decommissioned
    assert value(scrape(metrics), "appliance_devices", group="hall") is None


def test_telemetry_gives_per_device_gauges_until_the_device_goes_offline(metrics: FleetMetrics) -> None:
    send(
        metrics,
        "k1",
        "telemetry",
        {
            "cpu_percent": 12.5,
            "rss_mb": 100,
            "voice_to_voice_ms": {"p50": 600, "p95": 900},
            "races_won": {"local/smollm2-135m": 2},
            "providers": {"llm": "local/smollm2-135m"},
        },
    )
    samples = scrape(metrics)
    assert value(samples, "appliance_device_cpu_percent", device="k1", group="kitchen") == 12.5
    assert value(samples, "appliance_device_rss_bytes", device="k1", group="kitchen") == 100 * 1024 * 1024
    assert (
        value(samples, "appliance_device_voice_to_voice_seconds", device="k1", group="kitchen", quantile="0.95") == 0.9
    )
    assert (
        value(samples, "appliance_device_voice_to_voice_seconds", device="k1", group="kitchen", quantile="0.5") == 0.6
    )
    assert value(samples, "appliance_device_races_won", device="k1", group="kitchen", winner="local/smollm2-135m") == 2
    assert (
        value(
            samples,
            "appliance_device_provider_info",
            device="k1",
            group="kitchen",
            stage="llm",
            provider="local/smollm2-135m",
        )
        == 1
    )
    send(metrics, "k1", "status", {"state": "offline", "group": "kitchen", "version": "0.2.0"})
    assert value(scrape(metrics), "appliance_device_cpu_percent", device="k1", group="kitchen") is None


def test_stale_telemetry_is_dropped() -> None:
    metrics = FleetMetrics("appliance", stale_s=0.0)
    send(metrics, "k1", "telemetry", {"cpu_percent": 1.0})
    assert not any(name == "appliance_device_cpu_percent" for name, _ in scrape(metrics))


def test_events_count_turns_into_a_histogram_errors_fallbacks_and_races(metrics: FleetMetrics) -> None:
    for ms in (400, 800, 2500):
        send(metrics, "k1", "events", {"type": "turn", "latency_ms": {"voice_to_voice": ms}})
    send(metrics, "k2", "events", {"type": "turn", "latency_ms": {"voice_to_voice": None}})
    send(metrics, "k1", "events", {"type": "error", "source": "mqtt", "message": "x"})
    send(
        metrics,
        "k1",
        "events",
        {"type": "provider", "stage": "llm", "provider": "openai/gpt-4o-mini", "available": False},
    )
    send(
        metrics,
        "k1",
        "events",
        {"type": "provider", "stage": "llm", "provider": "openai/gpt-4o-mini", "available": True},
    )
    send(metrics, "k1", "events", {"type": "race", "stage": "llm", "winner": "local/smollm2-135m"})
    samples = scrape(metrics)
    assert value(samples, "appliance_turns_total", group="kitchen") == 4
    assert value(samples, "appliance_voice_to_voice_seconds_count", group="kitchen") == 3
    assert value(samples, "appliance_voice_to_voice_seconds_sum", group="kitchen") == pytest.approx(3.7)
    assert value(samples, "appliance_voice_to_voice_seconds_bucket", group="kitchen", le="0.5") == 1
    assert value(samples, "appliance_voice_to_voice_seconds_bucket", group="kitchen", le="1.0") == 2
    assert value(samples, "appliance_voice_to_voice_seconds_bucket", group="kitchen", le="+Inf") == 3
    assert value(samples, "appliance_errors_total", group="kitchen", source="mqtt") == 1
    assert (
        value(
            samples, "appliance_provider_unavailable_total", group="kitchen", stage="llm", provider="openai/gpt-4o-mini"
        )
        == 1
    )
    assert value(samples, "appliance_races_total", group="kitchen", stage="llm", winner="local/smollm2-135m") == 1
    assert value(samples, "appliance_exporter_messages_total", kind="events") == 8


def test_payloads_that_are_not_what_devices_send_change_nothing(metrics: FleetMetrics) -> None:
    before = scrape(metrics)
    for topic, payload in [
        ("appliance/k1/events", b"not json"),
        ("appliance/k1/telemetry", b"[1, 2]"),
        ("appliance/k1/events", b'{"type": "turn", "latency_ms": [1]}'),
        ("other/k1/status", b"{}"),
        ("appliance/k1/state", b"{}"),
    ]:
        metrics.receive(topic, payload)
    after = scrape(metrics)
    assert {
        k: v for k, v in after.items() if k[0] not in ("appliance_exporter_messages_total", "appliance_turns_total")
    } == {k: v for k, v in before.items() if k[0] != "appliance_exporter_messages_total"}
