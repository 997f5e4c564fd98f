"""Staged rollouts of a config patch or a signed release: a canary share first, then batches, each gated on
health, halted and rolled back when too many devices fail.

The whole rollout is one retained document (`<prefix>/rollout/<name>`): the plan (batches of device ids),
where it is, and what happened to each device, with the values each had before. It is written after every
step, so another operator, or the same one after a crash, sees it (`status`) and carries it on
(`resume`); `pause` and `abort` are written to the same document and the running rollout obeys them at
the next step.

What is rolled out is a change (`kind` in the document), which knows how to apply itself to a batch and
undo itself on the devices touched: a config patch (`fleet/rollout_config.py`: the patch as each
device's desired config, and its previous values back) or a release (`fleet/rollout_release.py`: the
`update` command, the device back online with the new version within `deadline_s`; back with the
previous release if the operator gave one). The stages and health gates are the same for both.

A device passes its batch when the change applied, it shows no error event while the batch applies and
settles, it is still online, and its voice-to-voice p95 (from telemetry newer than the change) is not
worse than before by more than the margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.fleet.operator import FleetError, Operator
from appliance.fleet.rollout_config import ConfigChange
from appliance.fleet.rollout_release import ReleaseChange

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
States = ("running", "paused", "aborting", "halted", "aborted", "done")


@dataclass(frozen=True)
class RolloutOptions:
    canary: float = 0.05
    """Share of the target in the first batch (at least one device)."""
    batch: float = 0.25
    """Share of the target in each later batch (at least one device)."""
    pause_s: float = 10.0
    settle_s: float = 5.0
    """How long a batch is watched (error events, status) after it applied the change."""
    max_failures: int = 0
    """More failed devices than this halts the rollout and rolls back every device it touched."""
    v2v_margin: float = 0.25
    """A device's voice-to-voice p95 may get worse by this share before it counts as failed."""
    deadline_s: float = 600.0
    """A release: how long a device has to come back online running it (a real install takes minutes)."""


class RolloutChange(Protocol):
    """What a rollout rolls out: applied to a batch, undone on the devices it touched."""

    retained_before: tuple[str, ...]
    """The device topics (`config/reported`, `status`) `remember` reads."""

    def remember(self, device: str, retained: dict[str, Any]) -> dict[str, Any]:
        """What the device had before (the record's `before`), from its retained topics by kind."""
        ...

    async def apply(self, batch: list[str]) -> list[str | None]:
        """Per device of the batch: None if the change took, else why not."""
        ...

    async def roll_back(self, devices: list[str], records: dict[str, dict[str, Any]]) -> None:
        """Undo the change; sets each record's `result` (and a reason where it could not)."""
        ...


def change_of(operator: Operator, document: dict[str, Any]) -> RolloutChange:
    """A document without `kind` is a config rollout (written before releases could be rolled out)."""
    if document.get("kind", "config") == "release":
        return ReleaseChange(operator, document)
    return ConfigChange(operator, document)


def describe(document: dict[str, Any]) -> str:
    """What a rollout rolls out, for a status line: `audio.volume=35` or `release 1.2.0 (URL)`."""
    if document.get("kind", "config") == "release":
        release = document.get("release") or {}
        return f"release {release.get('version')} ({release.get('source')})"
    return json.dumps(document.get("patch"))


def rollout_topic(prefix: str, name: str) -> str:
    return f"{prefix}/rollout/{name}"


def plan_batches(device_ids: list[str], options: RolloutOptions) -> list[list[str]]:
    """The canary share first, then batches of `options.batch`; every batch has at least one device."""
    ids = sorted(device_ids)
    if not ids:
        return []
    canary = max(1, math.ceil(len(ids) * options.canary))
    size = max(1, math.ceil(len(ids) * options.batch))
    batches = [ids[:canary]]
    rest = ids[canary:]
    batches += [rest[i : i + size] for i in range(0, len(rest), size)]
    return batches


def new_document(
    name: str, target: str, change: dict[str, Any], batches: list[list[str]], options: RolloutOptions
) -> dict[str, Any]:
    """`change`: `{"kind": "config", "patch": {...}}` or a release's fields (`rollout_release.release_fields`)."""
    return {
        "name": name,
        "target": target,
        **change,
        "options": options.__dict__,
        "batches": batches,
        "next_batch": 0,
        "state": "running",
        "devices": {},
        "created": time.time(),
        "updated": time.time(),
    }


Progress = Callable[[str], None]


class Rollout:
    """Runs (or carries on) the rollout described by a document; `run` returns it finished, halted or paused."""

    def __init__(
        self,
        operator: Operator,
        document: dict[str, Any],
        progress: Progress = lambda _line: None,
        saved: Callable[[dict[str, Any]], None] = lambda _document: None,
    ) -> None:
        self.operator = operator
        self.doc = document
        self.saved = saved
        """Told the document each time it is written (a live view redraws from it)."""
        self.options = RolloutOptions(**document["options"])
        self.change = change_of(operator, document)
        self.progress = progress
        self.topic = rollout_topic(operator.mqtt.topic_prefix, document["name"])
        self._started = False

    async def run(self) -> dict[str, Any]:
        self.doc["state"] = "running"
        await self._save()
        self._started = True
        while self.doc["next_batch"] < len(self.doc["batches"]):
            wanted = self.doc["state"] if self.doc["state"] != "running" else await self._requested_state()
            if wanted == "paused":
                self.doc["state"] = "paused"
                self.progress("paused")
                return await self._save()
            if wanted == "aborting":
                return await self._roll_back("aborted", "aborted by an operator")
            index = self.doc["next_batch"]
            batch = self.doc["batches"][index]
            label = "canary" if index == 0 else f"batch {index}/{len(self.doc['batches']) - 1}"
            await self._run_batch(batch)
            failed = [d for d, r in self.doc["devices"].items() if r["result"] == "failed"]
            passed = sum(self.doc["devices"].get(d, {}).get("result") == "ok" for d in batch)
            self.progress(f"{label}: {passed} of {len(batch)} devices healthy, {len(failed)} failed in all")
            if len(failed) > self.options.max_failures:
                return await self._roll_back("halted", f"{len(failed)} devices failed: {', '.join(sorted(failed))}")
            self.doc["next_batch"] = index + 1
            await self._save()
            if self.doc["next_batch"] < len(self.doc["batches"]):
                await asyncio.sleep(self.options.pause_s)
        self.doc["state"] = "done"
        self.progress("done")
        return await self._save()

    async def run_abort(self) -> dict[str, Any]:
        """Roll back what a rollout nobody is running has touched."""
        return await self._roll_back("aborted", "aborted by an operator")

    # ----- one batch -------------------------------------------------------------------------------

    async def _run_batch(self, batch: list[str]) -> None:
        prefix = self.operator.mqtt.topic_prefix
        kinds = sorted({"telemetry", *self.change.retained_before})
        before = await self.operator.retained([f"{prefix}/{d}/{kind}" for d in batch for kind in kinds])
        for device in batch:
            retained = {kind: before.get(f"{prefix}/{device}/{kind}") for kind in kinds}
            self.doc["devices"][device] = {"result": "applying", "before": self.change.remember(device, retained),
                                           "p95_before": _p95(retained["telemetry"])}  # fmt: skip
        await self._save()
        started = time.time()
        erred: dict[str, str] = {}
        listening = asyncio.Event()
        watcher = asyncio.create_task(self._watch_errors(batch, erred, listening))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.operator.timeout_s):
                await listening.wait()  # subscribed before the change goes out, so no early error is missed
        results = await self.change.apply(batch)
        await asyncio.sleep(self.options.settle_s)
        watcher.cancel()  # the batch is watched while it applies and settles, not for a fixed time
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        after = await self.operator.retained(
            [f"{prefix}/{d}/{kind}" for d in batch for kind in ("telemetry", "status")]
        )
        for device, reason in zip(batch, results, strict=True):
            record = self.doc["devices"][device]
            status = after.get(f"{prefix}/{device}/status") or {}
            telemetry = after.get(f"{prefix}/{device}/telemetry") or {}
            if reason is None and device in erred:
                reason = f"error event: {erred[device]}"
            if reason is None and status.get("state") != "online":
                reason = "offline after the change"
            if reason is None:
                reason = self._slower(record.get("p95_before"), telemetry, started)
            record["result"], record["reason"] = ("ok", "") if reason is None else ("failed", reason)

    def _slower(self, p95_before: float | None, telemetry: dict[str, Any], since: float) -> str | None:
        fresh = isinstance(telemetry.get("ts"), (int, float)) and telemetry["ts"] >= since
        p95_after = _p95(telemetry) if fresh else None
        if p95_before is None or p95_after is None:
            return None  # nothing to compare yet: telemetry comes every telemetry_interval_s
        limit = p95_before * (1 + self.options.v2v_margin)
        return f"voice-to-voice p95 {p95_after:.0f} ms > {limit:.0f} ms" if p95_after > limit else None

    async def _watch_errors(self, batch: list[str], found: dict[str, str], listening: asyncio.Event) -> None:
        """Collect the error events the batch's devices publish (device -> message) until cancelled."""
        import aiomqtt

        prefix = self.operator.mqtt.topic_prefix
        try:
            async with self.operator.client() as client:
                for device in batch:
                    await client.subscribe(f"{prefix}/{device}/events", qos=0)
                listening.set()
                async for message in client.messages:
                    event = _json(message.payload)
                    if isinstance(event, dict) and event.get("type") == "error":
                        found.setdefault(str(message.topic).split("/")[-2], str(event.get("message", "")))
        except aiomqtt.MqttError:
            listening.set()  # the batch is judged on its replies and status alone

    # ----- halting, rolling back, the shared document ----------------------------------------------

    async def _roll_back(self, state: str, why: str) -> dict[str, Any]:
        self.progress(f"{why}: rolling back")
        touched = [d for d, r in self.doc["devices"].items() if r["result"] in ("ok", "failed", "applying")]
        await self.change.roll_back(touched, self.doc["devices"])
        self.doc["state"], self.doc["reason"] = state, why
        results: dict[str, int] = {}
        for device in touched:
            result = self.doc["devices"][device]["result"]
            results[result] = results.get(result, 0) + 1
        summary = ", ".join(f"{count} {result}" for result, count in sorted(results.items())) or "nothing to undo"
        self.progress(f"{state}: of {len(touched)} devices touched: {summary}")
        return await self._save()

    async def _requested_state(self) -> str:
        """What the shared document says now (another operator may have paused or aborted it)."""
        current = (await self.operator.retained([self.topic], listen_s=0.5)).get(self.topic)
        return str(current.get("state")) if isinstance(current, dict) else "running"

    async def _save(self) -> dict[str, Any]:
        if self.doc["state"] == "running" and self._started:
            # Another operator may have asked for a pause or an abort since we last looked: keep their word,
            # the loop obeys it at its next step.
            wanted = await self._requested_state()
            if wanted in ("paused", "aborting"):
                self.doc["state"] = wanted
        self.doc["updated"] = time.time()
        await publish_document(self.operator, self.doc)
        self.saved(self.doc)
        return self.doc


async def publish_document(operator: Operator, document: dict[str, Any]) -> None:
    import aiomqtt

    topic = rollout_topic(operator.mqtt.topic_prefix, document["name"])
    try:
        async with operator.client() as client:
            await client.publish(topic, json.dumps(document), qos=1, retain=True)
    except aiomqtt.MqttError as exc:
        raise FleetError(f"cannot reach the broker {operator.mqtt.host}:{operator.mqtt.port}: {exc}") from None


async def load_document(operator: Operator, name: str) -> dict[str, Any]:
    topic = rollout_topic(operator.mqtt.topic_prefix, name)
    found = (await operator.retained([topic])).get(topic)
    if not isinstance(found, dict):
        raise FleetError(f"no rollout named {name!r}")
    return found


def _p95(telemetry: Any) -> float | None:
    if not isinstance(telemetry, dict):
        return None
    value = (telemetry.get("voice_to_voice_ms") or {}).get("p95")
    return float(value) if isinstance(value, (int, float)) else None


def _json(payload: Any) -> Any:
    try:
        return json.loads(bytes(payload))
    except (ValueError, TypeError):
        return None
