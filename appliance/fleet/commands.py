"""Commands over MQTT: parsed, validated, run once per id, always answered.

A command payload is a JSON object with an `id`; the reply is `{"id", "ok": true, "result"}` or
`{"id", "ok": false, "error": {"code", "message"}}`. Bad JSON, unknown commands, wrong types and
oversized payloads get an error reply and never reach a handler. A repeated id is answered from
the first result without running the command again.
"""

from __future__ import annotations

import asyncio
import json
import logging
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

    model_config = ConfigDict(extra="forbid")
    id: str


Handler = Callable[[Any], Awaitable[Any]]


class CommandRouter:
    def __init__(self, commands: Mapping[str, tuple[type[CommandArgs], Handler]]) -> None:
        self.commands = dict(commands)
        self._answered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._running: dict[str, asyncio.Future[dict[str, Any]]] = {}
        """Commands still running, by id: a repeat while the first runs waits for its reply."""

    async def handle(self, name: str, payload: bytes) -> dict[str, Any]:
        """The reply to one command message (never raises)."""
        command_id: Any = None
        try:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise CommandError("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
            try:
                data = json.loads(payload)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CommandError("bad_json", f"payload is not JSON: {exc}") from None
            if not isinstance(data, dict):
                raise CommandError("bad_request", "payload must be a JSON object")
            command_id = data.get("id")
            if not isinstance(command_id, str) or not command_id:
                raise CommandError("bad_request", "every command needs a string `id`")
            if command_id in self._answered:
                return self._answered[command_id]
            if command_id in self._running:
                return await asyncio.shield(self._running[command_id])
            self._running[command_id] = asyncio.get_running_loop().create_future()
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
            log.warning("command %s (id %s) refused: %s", name, command_id, exc.message)
            reply = {"id": command_id, "ok": False, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:
            log.exception("command %s (id %s) failed", name, command_id)
            reply = {
                "id": command_id,
                "ok": False,
                "error": {"code": "failed", "message": f"{type(exc).__name__}: {exc}"},
            }
        if isinstance(command_id, str) and command_id:
            self._answered[command_id] = reply
            while len(self._answered) > REMEMBERED_IDS:
                self._answered.popitem(last=False)
            running = self._running.pop(command_id, None)
            if running is not None and not running.done():
                running.set_result(reply)
        return reply
