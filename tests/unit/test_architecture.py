"""The package's architecture, checked over its own imports (read with `ast`, never imported)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

# The layers of `appliance/`, lowest first. A module may import from its own layer or a lower one, never
# from a higher one: what sits low (audio, models, providers, the agent) must not know what is built on
# it (calls, the app, fleet, the CLI). A unit is a subpackage folder ("voice") or a top-level module
# ("config.py"); every module file must be in one, so a new folder or top-level module is placed here.
# Every import counts, in functions and under `if TYPE_CHECKING:` too. `__init__.py` at the top re-exports
# the public agent API from several layers: it is skipped, and so is `from appliance import NAME` of a
# name that is not a module (`__version__`: an import of that `__init__.py`).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config.py", "aio.py", "emitter.py", "audio"),
    ("models",),
    ("providers",),
    ("agents",),
    ("voice",),
    ("transports", "wyoming"),
    ("calls",),
    ("engines.py", "app.py", "control.py"),
    ("release",),
    ("system",),
    ("fleet",),
    ("bench", "simulate"),
    ("cli", "__main__.py"),
)
MAX_LINES = 600
PACKAGE = Path(__file__).resolve().parents[2] / "appliance"


@dataclass(frozen=True)
class Import:
    path: str  # the importing file, relative to the package's parent: "appliance/fleet/link.py"
    line: int
    module: str  # the module imported, or imported from: "appliance.app"
    name: str | None  # the name taken from it (`from module import name`), None for `import module`
    source: str  # the importing unit: "fleet"
    target: str | None  # the unit of this package imported ("app.py"), None for any other package

    def __str__(self) -> str:
        what = f"from {self.module} import {self.name}" if self.name else f"import {self.module}"
        return f"{self.path}:{self.line}: {what}"


def unit_of(file: Path, root: Path) -> str:
    """The unit of a module file: its folder just below the package's, or the file itself at the top."""
    return file.relative_to(root).parts[0]


def module_files(root: Path) -> list[Path]:
    """The package's module files, but for its top `__init__.py`."""
    files = (p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(p for p in files if p.relative_to(root).parts != ("__init__.py",))


def collect_imports(root: Path) -> list[Import]:
    """Every import in the package at `root` (in functions and under `if TYPE_CHECKING:` too)."""
    found: list[Import] = []
    for file in module_files(root):
        path, source = str(file.relative_to(root.parent)), unit_of(file, root)
        here = [root.name, *file.relative_to(root).parts[:-1]]  # the package relative imports start from
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            pairs: list[tuple[str, str | None]]
            if isinstance(node, ast.Import):
                pairs = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                pairs = [(module, alias.name) for alias in node.names]
            else:
                continue
            found += [Import(path, node.lineno, m, n, source, _target(root, m, n)) for m, n in pairs]
    return found


def _target(root: Path, module: str, name: str | None) -> str | None:
    inner = module.split(".")[1:] if module.split(".")[0] == root.name else None
    if inner is None:
        return None
    if not inner and name is not None:  # `from package import x`: a module, or a name of `__init__.py`
        inner = [name] if (root / name).is_dir() or (root / f"{name}.py").is_file() else []
    if not inner:
        return None  # `__init__.py`
    return inner[0] if (root / inner[0]).is_dir() else f"{inner[0]}.py"


def layer_of(unit: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if unit in layer), None)


def package_graph(imports: Iterable[Import]) -> dict[str, dict[str, list[Import]]]:
    """unit -> the units it imports -> the imports that make that edge (self-imports left out)."""
    graph: dict[str, dict[str, list[Import]]] = {}
    for imp in imports:
        graph.setdefault(imp.source, {})
        if imp.target is not None and imp.target != imp.source:
            graph[imp.source].setdefault(imp.target, []).append(imp)
    return graph


def find_cycles(graph: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """The shortest cycle (`[a, b, a]`) through each unit on one, but for units already in a cycle found."""
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if any(start in cycle for cycle in cycles):
            continue
        came_from: dict[str, str] = {}
        queue = [start]
        for unit in queue:  # breadth first, from `start` until it comes back to it
            if start in graph.get(unit, {}):
                path = [unit]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                cycles.append([*reversed(path), start])
                break
            for nxt in sorted(graph.get(unit, {})):
                if nxt not in came_from:
                    came_from[nxt] = unit
                    queue.append(nxt)
    return cycles


def describe_cycles(graph: Mapping[str, Mapping[str, list[Import]]]) -> list[str]:
    """Each cycle as `a -> b -> a`, then the imports that make each of its steps."""
    lines: list[str] = []
    for cycle in find_cycles(graph):
        lines.append(" -> ".join(cycle))
        lines += [f"    {a} -> {b}: {imp}" for a, b in pairwise(cycle) for imp in graph[a][b]]
    return lines


def imports_of(imports: Iterable[Import], units: set[str], module: str, name: str) -> list[str]:
    """The imports in `units` that take `name` (from anywhere) or the whole `module` that defines it."""
    return [
        str(imp)
        for imp in imports
        if imp.source in units
        and (imp.name == name or (imp.name is None and imp.module == module) or f"{imp.module}.{imp.name}" == module)
    ]


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return collect_imports(PACKAGE)


def test_no_import_cycle_between_packages(imports: list[Import]) -> None:
    found = describe_cycles(package_graph(imports))
    assert not found, "import cycles between packages:\n" + "\n".join(found)


def test_the_cycle_check_reports_a_cycle_in_a_synthetic_package(tmp_path: Path) -> None:
    files = {
        "a/__init__.py": "",
        "a/x.py": "from pkg.b.y import thing\n",
        "b/__init__.py": "",
        "b/y.py": "def f() -> None:\n    from ..a import x\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    assert describe_cycles(package_graph(collect_imports(tmp_path / "pkg"))) == [
        "a -> b -> a",
        "    a -> b: pkg/a/x.py:1: from pkg.b.y import thing",
        "    b -> a: pkg/b/y.py:2: from pkg.a import x",
    ]


def test_imports_only_run_down_or_sideways_through_the_layers(imports: list[Import]) -> None:
    upward = [
        f"{imp}  ({imp.source}, layer {src}, imports {imp.target}, layer {dst})"
        for imp in imports
        if imp.target is not None
        and (src := layer_of(imp.source)) is not None
        and (dst := layer_of(imp.target)) is not None
        and dst > src
    ]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_fleet_and_cli_reach_the_voice_session_only_through_control(imports: list[Import]) -> None:
    found = imports_of(imports, {"fleet", "cli"}, "appliance.voice.session", "VoiceSession")
    assert not found, "VoiceSession imported outside control.py:\n" + "\n".join(found)


def test_providers_agents_and_voice_know_no_app_config_mqtt_or_livekit(imports: list[Import]) -> None:
    inner = {"providers", "agents", "voice"}
    found = imports_of(imports, inner, "appliance.config", "AppConfig")
    found += [str(i) for i in imports if i.source in inner and i.module.split(".")[0] in {"aiomqtt", "paho", "livekit"}]
    assert not found, "providers/, agents/ and voice/ import the app's config, MQTT or LiveKit:\n" + "\n".join(found)


def test_no_module_is_over_the_line_limit() -> None:
    sizes = {p.relative_to(PACKAGE.parent): len(p.read_text().splitlines()) for p in module_files(PACKAGE)}
    long = [f"{path}: {n} lines" for path, n in sizes.items() if n > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)


def test_every_module_belongs_to_a_layer() -> None:
    lost = [str(p.relative_to(PACKAGE.parent)) for p in module_files(PACKAGE) if layer_of(unit_of(p, PACKAGE)) is None]
    assert not lost, "modules in no layer (add their folder to LAYERS):\n" + "\n".join(lost)
