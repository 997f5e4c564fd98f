"""The live view of a rollout on a terminal: its batches, each one's devices healthy, failed and in
progress, an overall bar, and the last progress lines, redrawn (rich.live) whenever the rollout writes
its document. Off a terminal (or with --json) the rollout prints plain progress lines instead."""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from appliance.fleet.rollout import describe

DONE_RESULTS = ("ok", "failed", "unchanged", "rolled_back", "rollback_pending")


def render(document: dict[str, Any], lines: list[str]) -> Group:
    devices: dict[str, dict[str, Any]] = document.get("devices", {})
    batches: list[list[str]] = document.get("batches", [])
    title = Text.assemble(
        (f"rollout {document['name']}", "bold"),
        f" of {describe(document)} to {document['target']}: ",
        (str(document["state"]), _state_style(str(document["state"]))),
    )
    table = Table(box=None, pad_edge=False)
    for column in ("batch", "devices", "healthy", "failed", "in progress", ""):
        table.add_column(column, justify="left" if column in ("batch", "") else "right")
    for index, batch in enumerate(batches):
        results = [devices.get(device, {}).get("result") for device in batch]
        moving = sum(r == "applying" for r in results)
        status = "done" if index < document.get("next_batch", 0) else "running" if moving else "waiting"
        rolled = sum(r in ("rolled_back", "rollback_pending", "unchanged") for r in results)
        if rolled:
            status = f"{rolled} rolled back"
        table.add_row(
            "canary" if index == 0 else f"{index}/{len(batches) - 1}",
            str(len(batch)),
            str(results.count("ok")),
            str(results.count("failed")),
            str(moving),
            status,
        )
    total = sum(len(b) for b in batches)
    finished = sum(1 for record in devices.values() if record.get("result") in DONE_RESULTS)
    bar = ProgressBar(total=max(total, 1), completed=finished, width=40)
    tail = Text("\n".join(lines), style="dim")
    return Group(title, table, Text(f"{finished} of {total} devices through"), bar, tail)


def _state_style(state: str) -> str:
    return {"done": "green", "running": "cyan", "paused": "yellow"}.get(state, "red")


class RolloutView:
    """`with RolloutView(console) as view:` pass `view.document` and `view.line` to the rollout."""

    def __init__(self, console: Console, keep_lines: int = 4) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)
        self._lines: deque[str] = deque(maxlen=keep_lines)
        self._document: dict[str, Any] | None = None

    def __enter__(self) -> RolloutView:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._live.__exit__(kind, exc, traceback)

    def document(self, document: dict[str, Any]) -> None:
        self._document = document
        self._draw()

    def line(self, text: str) -> None:
        self._lines.append(text)
        self._draw()

    def _draw(self) -> None:
        if self._document is not None:
            self._live.update(render(self._document, list(self._lines)), refresh=True)
