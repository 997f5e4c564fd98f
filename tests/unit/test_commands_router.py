"""The MQTT command router on its own: every failure is a reply, ids are answered once."""

from __future__ import annotations

import asyncio
import json

from appliance.fleet.commands import REMEMBERED_IDS, CommandArgs, CommandRouter


class Echo(CommandArgs):
    word: str


def router() -> tuple[CommandRouter, list[str]]:
    calls: list[str] = []

    async def echo(args: Echo) -> dict[str, str]:
        calls.append(args.word)
        return {"echo": args.word}

    async def boom(args: CommandArgs) -> None:
        raise RuntimeError("kaput")

    return CommandRouter({"echo": (Echo, echo), "boom": (CommandArgs, boom)}), calls


def handle(r: CommandRouter, name: str, payload: object) -> dict[str, object]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return asyncio.run(r.handle(name, raw))


def test_a_command_runs_once_per_id() -> None:
    r, calls = router()
    first = handle(r, "echo", {"id": "1", "word": "hi"})
    assert first == {"id": "1", "ok": True, "result": {"echo": "hi"}}
    assert handle(r, "echo", {"word": "hi", "id": "1"}) == first  # the same command again (key order aside)
    assert calls == ["hi"]


def test_a_reused_id_on_another_payload_or_command_is_refused_not_answered_with_the_first_result() -> None:
    r, calls = router()
    handle(r, "echo", {"id": "1", "word": "hi"})
    other_payload = handle(r, "echo", {"id": "1", "word": "other"})
    other_command = handle(r, "boom", {"id": "1"})
    for reply in (other_payload, other_command):
        assert reply["ok"] is False and reply["error"]["code"] == "id_reused", reply  # type: ignore[index]
    assert calls == ["hi"]
    assert handle(r, "echo", {"id": "1", "word": "hi"})["ok"] is True  # the first is still remembered


def test_a_command_without_an_id_runs_every_time_under_a_made_up_id() -> None:
    r, calls = router()
    first, second = handle(r, "echo", {"word": "hi"}), handle(r, "echo", {"word": "hi"})
    assert first["ok"] is True and second["ok"] is True and calls == ["hi", "hi"]
    assert str(first["id"]).startswith("auto-") and first["id"] != second["id"]


def test_types_are_strict_a_string_is_not_a_boolean() -> None:
    class Mute(CommandArgs):
        on: bool

    async def mute(args: Mute) -> bool:
        return args.on

    r = CommandRouter({"mute": (Mute, mute)})
    refused = handle(r, "mute", {"id": "m", "on": "true"})
    assert refused["ok"] is False and refused["error"]["code"] == "bad_request"  # type: ignore[index]
    assert handle(r, "mute", {"id": "n", "on": True})["result"] is True


def test_unknown_fields_and_a_failing_handler_are_error_replies() -> None:
    r, _ = router()
    extra = handle(r, "echo", {"id": "2", "word": "x", "loud": True})
    assert extra["ok"] is False and extra["error"]["code"] == "bad_request"  # type: ignore[index]
    failed = handle(r, "boom", {"id": "3"})
    assert failed["error"] == {"code": "failed", "message": "RuntimeError: kaput"}


def test_old_ids_are_forgotten_so_memory_stays_bounded() -> None:
    r, calls = router()
    for index in range(REMEMBERED_IDS + 5):
        handle(r, "echo", {"id": str(index), "word": "w"})
    handle(r, "echo", {"id": "0", "word": "again"})  # long forgotten: runs again
    assert calls[-1] == "again" and len(calls) == REMEMBERED_IDS + 6


def test_a_repeat_that_arrives_while_the_first_still_runs_waits_for_its_reply() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def slow(args: Echo) -> dict[str, str]:
        calls.append(args.word)
        await release.wait()
        return {"echo": args.word}

    async def main() -> list[dict[str, object]]:
        r = CommandRouter({"slow": (Echo, slow)})
        first = asyncio.create_task(r.handle("slow", b'{"id": "a", "word": "one"}'))
        again = asyncio.create_task(r.handle("slow", b'{"id": "a", "word": "one"}'))
        reused = asyncio.create_task(r.handle("slow", b'{"id": "a", "word": "two"}'))
        await asyncio.sleep(0.01)
        release.set()
        return list(await asyncio.gather(first, again, reused))

    first, again, reused = asyncio.run(main())
    assert first == again == {"id": "a", "ok": True, "result": {"echo": "one"}}
    assert reused["error"]["code"] == "id_reused"  # type: ignore[index]
    assert calls == ["one"]


def test_payloads_python_takes_but_json_does_not_are_bad_json_not_failures() -> None:
    r, calls = router()
    deep = b'{"id": "d", "word": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # valid, under 64 KiB, too deep
    huge = b'{"id": "h", "word": ' + b"9" * 5000 + b"}"
    infinite = b'{"id": "i", "word": Infinity}'
    for payload in (deep, huge, infinite):
        reply = handle(r, "echo", payload)
        assert reply["ok"] is False and reply["error"]["code"] == "bad_json", reply  # type: ignore[index]
    assert calls == []
