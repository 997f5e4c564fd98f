"""The shopping list: a JSON file on the box, written atomically so a power cut never loses it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def default_list_file() -> Path:
    """Under the service's state directory (systemd's StateDirectory=), else the appliance's `.state`."""
    state = os.environ.get("STATE_DIRECTORY") or os.environ.get("APPLIANCE_STATE__DIR") or ".state"
    return Path(state) / "kitchen" / "shopping-list.json"


class ShoppingList:
    def __init__(self, path: Path) -> None:
        self.path = path

    def items(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [str(item) for item in data.get("items", [])]

    def add(self, item: str) -> bool:
        """False if it was on the list already."""
        items = self.items()
        if _normal(item) in {_normal(i) for i in items}:
            return False
        self._save([*items, item.strip()])
        return True

    def remove(self, item: str) -> bool:
        """False if it was not on the list."""
        items = self.items()
        kept = [i for i in items if _normal(i) != _normal(item)]
        if len(kept) == len(items):
            return False
        self._save(kept)
        return True

    def _save(self, items: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps({"items": items}, indent=2))
        temporary.replace(self.path)


def _normal(item: str) -> str:
    return " ".join(item.lower().split()).removeprefix("some ").removeprefix("a ").removeprefix("an ")
