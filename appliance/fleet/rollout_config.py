"""What a config rollout does to one device (`fleet/rollout.py` runs the stages): the patch as the device's
own desired config; rolling back writes the values it had before as its desired config again."""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.fleet.operator import FleetError, Operator, lookup, nested
from appliance.fleet.remote_keys import dotted_keys


class ConfigChange:
    """A config patch (`{"audio": {"volume": 35}}`), applied and undone per device."""

    retained_before: tuple[str, ...] = ("config/reported",)

    def __init__(self, operator: Operator, document: dict[str, Any]) -> None:
        self.operator = operator
        self.patch: dict[str, Any] = document["patch"]

    def remember(self, _device: str, retained: dict[str, Any]) -> dict[str, Any]:
        """The values the patch changes, as the device reports them now (None: not set)."""
        config = (retained.get("config/reported") or {}).get("config") or {}
        return {key: lookup(config, key) for key, _value in dotted_keys(self.patch)}

    async def apply(self, batch: list[str]) -> list[str | None]:
        """Per device: None if it applied the patch, else why not."""
        return list(await asyncio.gather(*(self._apply(device) for device in batch)))

    async def _apply(self, device: str) -> str | None:
        try:
            _document, replies = await self.operator.set_desired(device, self.patch, expect={device})
        except FleetError as exc:
            return str(exc)
        reply = next((r for r in replies if r.get("device") == device), None)
        if reply is None:
            return "no answer"
        if not reply.get("ok"):
            error = reply.get("error") or {}
            return f"{error.get('code', 'refused')}: {error.get('message', '')}".strip()
        return None

    async def roll_back(self, devices: list[str], records: dict[str, dict[str, Any]]) -> None:
        """Each device's previous values as its desired config: `rolled_back` once it answered, else
        `rollback_pending` (the retained document still brings it back when it reconnects)."""
        for device in devices:
            record = records[device]
            restore = nested({k: v for k, v in record["before"].items() if v is not None})
            if not restore:
                record["result"] = "rolled_back"
                continue
            try:
                _doc, replies = await self.operator.set_desired(device, restore, expect={device})
                answered = any(r.get("device") == device and r.get("ok") for r in replies)
                record["result"] = "rolled_back" if answered else "rollback_pending"
            except FleetError as exc:
                record["result"], record["reason"] = "rollback_pending", str(exc)
