"""Commands over MQTT: parsed, validated, run once per id, always answered.

A command payload is a JSON object, with an `id` when the sender wants idempotency; the reply is
`{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": {"code", "message"}}`. Bad JSON,
unknown commands, wrong types (strictly: `"true"` is not a boolean) and oversized payloads get an error
reply and never reach a handler. A repeated id with the same command and payload is answered from the
first result without running it again; the same id on another command or payload is refused
(`id_reused`), never answered with the first one's result. A command without an id gets one made up
(as Home Assistant, Zigbee2MQTT and Tasmota send them) and is not remembered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 64 * 1024
REMEMBERED_IDS = 1024


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CommandArgs(BaseModel):
    """Base of every command's arguments: unknown fields are an error, as in the config."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str


Handler = Callable[[Any], Awaitable[Any]]


class CommandRouter:
    def __init__(self, commands: Mapping[str, tuple[type[CommandArgs], Handler]]) -> None:
        self.commands = dict(commands)
        self._answered: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        """Replies by id, with the fingerprint (command and payload) they answered."""
        self._running: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        """Commands still running, by id: a repeat while the first runs waits for its reply."""

    async def handle(self, name: str, payload: bytes) -> dict[str, Any]:
        """The reply to one command message (never raises)."""
        command_id: Any = None
        owner = False
        try:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise CommandError("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
            data = parse_json_object(payload)
            command_id = data.get("id")
            if command_id is None:
                command_id = data["id"] = f"auto-{uuid.uuid4().hex[:12]}"
            elif not isinstance(command_id, str) or not command_id:
                raise CommandError("bad_request", "`id` must be a non-empty string")
            else:
                fingerprint = f"{name} {json.dumps(data, sort_keys=True)}"
                if command_id in self._answered:
                    return self._repeat(command_id, fingerprint, *self._answered[command_id])
                if command_id in self._running:
                    seen, running = self._running[command_id]
                    return self._repeat(command_id, fingerprint, seen, await asyncio.shield(running))
                self._running[command_id] = (fingerprint, asyncio.get_running_loop().create_future())
                owner = True
            if name not in self.commands:
                known = ", ".join(sorted(self.commands))
                raise CommandError("unknown_command", f"unknown command {name!r} (known: {known})")
            model, handler = self.commands[name]
            try:
                args = model.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise CommandError("bad_request", f"{where}: {first['msg']}") from None
            result = await handler(args)
            reply: dict[str, Any] = {"id": command_id, "ok": True, "result": result}
        except CommandError as exc:
            log.warning("command %r (id %r) refused: %r", name, command_id, exc.message)
            reply = {"id": command_id, "ok": False, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:
            log.exception("command %r (id %r) failed", name, command_id)
            reply = {
                "id": command_id,
                "ok": False,
                "error": {"code": "failed", "message": f"{type(exc).__name__}: {exc}"},
            }
        if owner:
            fingerprint, running = self._running.pop(command_id)
            self._answered[command_id] = (fingerprint, reply)
            while len(self._answered) > REMEMBERED_IDS:
                self._answered.popitem(last=False)
            if not running.done():
                running.set_result(reply)
        return reply

    @staticmethod
    def _repeat(command_id: str, fingerprint: str, seen: str, reply: dict[str, Any]) -> dict[str, Any]:
        if fingerprint == seen:
            return reply
        message = f"id {command_id!r} was already used for another command or payload; use a new id"
        log.warning("command refused: %s", message)
        return {"id": command_id, "ok": False, "error": {"code": "id_reused", "message": message}}


def parse_json_object(payload: bytes, code: str = "bad_json") -> dict[str, Any]:
    """A JSON object from an MQTT payload, or CommandError(code) saying what is wrong with it."""
    try:
        data = json.loads(payload, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(code, f"payload is not JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:  # nesting too deep, an integer of thousands of digits
        raise CommandError(code, f"payload is not usable JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise CommandError("bad_request" if code == "bad_json" else code, "payload must be a JSON object")
    return data


def _no_constant(name: str) -> Any:
    """`NaN`, `Infinity`: not JSON, refused (Python's parser would take them)."""
    raise ValueError(f"{name} is not JSON")
