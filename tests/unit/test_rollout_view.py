"""The rollout's live terminal view: what it shows for a document mid-way, halted, and as it changes."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console

from appliance.cli.rollout_view import RolloutView, render
from appliance.fleet.rollout import RolloutOptions, new_document, plan_batches


def document() -> dict[str, Any]:
    ids = [f"box-{n:02d}" for n in range(10)]
    options = RolloutOptions(canary=0.1, batch=0.5)
    doc = new_document("quiet", "all", {"kind": "config", "patch": {"audio": {"volume": 30}}},
                       plan_batches(ids, options), options)  # fmt: skip
    return doc


def shown(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(renderable)
    return console.export_text()


def test_a_running_rollout_shows_each_batch_and_how_far_it_is() -> None:
    doc = document()
    canary, first, _second = doc["batches"]
    doc["devices"] = {canary[0]: {"result": "ok"}} | {d: {"result": "applying"} for d in first}
    doc["next_batch"] = 1
    text = shown(render(doc, ["canary: 1 of 1 devices healthy, 0 failed in all"]))
    assert 'rollout quiet of {"audio": {"volume": 30}} to all: running' in text
    cells = [line.split() for line in text.splitlines()]
    rows = {row[0]: row[1:] for row in cells if row[:1] in (["canary"], ["1/2"], ["2/2"])}
    assert rows["canary"] == ["1", "1", "0", "0", "done"]
    assert rows["1/2"] == ["5", "0", "0", "5", "running"]
    assert rows["2/2"] == ["4", "0", "0", "0", "waiting"]
    assert "1 of 10 devices through" in text
    assert "canary: 1 of 1 devices healthy" in text


def test_a_halted_rollout_shows_what_was_rolled_back() -> None:
    doc = document()
    canary = doc["batches"][0]
    doc["devices"] = {canary[0]: {"result": "rolled_back", "reason": "bad_request: volume"}}
    doc["state"] = "halted"
    text = shown(render(doc, []))
    assert "to all: halted" in text
    assert "1 rolled back" in text


def test_the_view_redraws_when_the_rollout_writes_its_document() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True)
    doc = document()
    with RolloutView(console) as view:
        view.document(doc)
        doc["devices"] = {doc["batches"][0][0]: {"result": "ok"}}
        doc["next_batch"], doc["state"] = 3, "done"
        view.line("done")
        view.document(doc)
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    first, last = drawn.split("to all: running", 1)[1], drawn.rsplit("rollout quiet", 1)[1]
    assert "waiting" in first and "0 of 10 devices through" in first
    assert "to all: done" in last and "1 of 10 devices through" in last
