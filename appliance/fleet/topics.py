"""The MQTT topic contract (DESIGN.md): one place that spells every topic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str
    device_id: str
    group: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/{self.device_id}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.prefix}/{self.device_id}/telemetry"

    @property
    def events(self) -> str:
        return f"{self.prefix}/{self.device_id}/events"

    @property
    def state(self) -> str:
        """Retained, on every change: what Home Assistant's entities and operators read."""
        return f"{self.prefix}/{self.device_id}/state"

    @property
    def config_reported(self) -> str:
        return f"{self.prefix}/{self.device_id}/config/reported"

    @property
    def command_filters(self) -> list[str]:
        """Commands for this device, its group, and the whole fleet."""
        return [
            f"{self.prefix}/{self.device_id}/cmd/+",
            f"{self.prefix}/group/{self.group}/cmd/+",
            f"{self.prefix}/all/cmd/+",
        ]

    @staticmethod
    def command_name(topic: str) -> str:
        return topic.rsplit("/cmd/", 1)[1] if "/cmd/" in topic else ""


def latest_release_topic(prefix: str) -> str:
    """Retained, written by operators (`appliance fleet announce`): the newest signed release,
    `{"version", "release", "sha256", "ts"}`; Home Assistant's update entity reads its version."""
    return f"{prefix}/release/latest"
