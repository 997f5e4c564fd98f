"""Build a real wheel of this checkout at any version, offline and in a fraction of a second.

The release tests need wheels of several versions. pip's own build needs a setuptools new enough for
the project's metadata, which is fetched from the network under build isolation; this writes the same
wheel format (PEP 427: the package, METADATA, WHEEL, entry_points.txt and RECORD) with the standard
library, so pip installs it exactly as it would a published release.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _metadata(project: dict[str, object], version: str) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {version}"]
    lines.append(f"Requires-Python: {project.get('requires-python', '>=3.11')}")
    lines += [f"Requires-Dist: {req}" for req in project.get("dependencies", [])]  # type: ignore[attr-defined]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})  # type: ignore[assignment]
    for extra, requirements in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {req}; extra == "{extra}"' for req in requirements]
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(version: str, out_dir: Path, source: Path = ROOT) -> Path:
    """appliance-VERSION-py3-none-any.whl in `out_dir`, from the package in `source`, reporting VERSION."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    name = project["name"]
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted((source / name).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(source).as_posix()] = path.read_bytes()
    init = f"{name}/__init__.py"
    files[init] = re.sub(rb'(?m)^__version__ = ".*"$', f'__version__ = "{version}"'.encode(), files[init])
    scripts = project.get("scripts", {})
    entry_points = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    files[f"{dist_info}/METADATA"] = _metadata(project, version).encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record = [_record_line(n, d) for n, d in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in files.items():
            archive.writestr(arcname, data)
    return wheel
