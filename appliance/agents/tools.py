"""Function tools: a Python function the agent can call, described to the LLM by a JSON schema.

`@function_tool` reads the schema from the type hints and the docstring (first paragraph =
description; an `Args:` section describes the parameters). A `RunContext` parameter is passed
by the runtime and is not part of the schema. Optional sentence templates ("set a timer for
{minutes} minutes") let common commands skip the LLM entirely, as Home Assistant's local
intents do.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_ATTR = "__appliance_tool__"


class ToolError(Exception):
    """Raise from a tool to tell the LLM (and the user) what went wrong, in one line."""


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments (an object)."""
    fn: Callable[..., Awaitable[Any] | Any]
    context_param: str | None = None
    templates: tuple[str, ...] = ()
    say_result: bool | None = None
    """Speak the tool's result as the reply, without a second LLM call. None (the default): do so
    when the result reads as a sentence ("The kitchen light is on."); a tiny local model
    rephrasing it mostly adds delay and mistakes. False: always let the LLM phrase the reply."""
    timeout_s: float = 10.0
    filler: str | None = None
    """Said first when the tool takes longer than `filler_after_s` ("One moment.")."""
    filler_after_s: float = 1.0
    keywords: tuple[str, ...] = field(default=())
    """Extra words that point at this tool, for routing ("alarm" for a timer tool)."""

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))


@overload
def function_tool(fn: F) -> F: ...
@overload
def function_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    templates: Sequence[str] = (),
    say_result: bool | None = None,
    timeout_s: float = 10.0,
    filler: str | None = None,
    filler_after_s: float = 1.0,
    keywords: Sequence[str] = (),
) -> Callable[[F], F]: ...


def function_tool(fn: Any = None, **options: Any) -> Any:
    """Mark a function or method as a tool. Usable bare (`@function_tool`) or with options."""

    def mark(target: F) -> F:
        setattr(target, _TOOL_ATTR, options)
        return target

    return mark(fn) if fn is not None else mark


def is_tool(obj: object) -> bool:
    return hasattr(obj, _TOOL_ATTR)


def build_tool(fn: Callable[..., Any]) -> FunctionTool:
    """The FunctionTool of a (bound) function marked with @function_tool."""
    options: dict[str, Any] = dict(getattr(fn, _TOOL_ATTR, {}))
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    context_param = None
    for param in signature.parameters.values():
        if param.name in ("self", "cls"):
            continue
        hint = hints.get(param.name, str)
        if _is_run_context(hint):
            context_param = param.name
            continue
        schema = json_schema_of(hint)
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        else:
            schema["default"] = _plain(param.default)
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    name = options.pop("name", None) or fn.__name__
    description = options.pop("description", None) or summary
    if "templates" in options:
        options["templates"] = tuple(options["templates"])
    if "keywords" in options:
        options["keywords"] = tuple(options["keywords"])
    return FunctionTool(name, description, parameters, fn, context_param, **options)


def json_schema_of(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is str:
        return {"type": "string"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [str(m.value) for m in hint]}
    if origin is Literal:
        return {"type": _json_type(args[0]), "enum": list(args)}
    if origin in (list, Sequence, tuple):
        return {"type": "array", "items": json_schema_of(args[0]) if args else {}}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return json_schema_of(options[0])
        return {"anyOf": [json_schema_of(a) for a in options]}
    raise TypeError(f"tool parameter type {hint!r} is not supported (use int, float, bool, str, Literal, Enum, list)")


def _json_type(value: object) -> str:
    return {int: "integer", float: "number", bool: "boolean"}.get(type(value), "string")


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _is_run_context(hint: Any) -> bool:
    from appliance.agents.context import RunContext

    return hint is RunContext or typing.get_origin(hint) is RunContext


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """First paragraph, and `name: text` lines of an Args: section."""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    args: dict[str, str] = {}
    match = re.search(r"^(?:Args|Arguments|Parameters):\s*\n(.*?)(?:\n\s*\n|\Z)", doc, flags=re.S | re.M)
    if match:
        current = None
        for line in match.group(1).splitlines():
            item = re.match(r"\s*(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if item:
                current = item.group(1)
                args[current] = item.group(2).strip()
            elif current and line.strip():
                args[current] += " " + line.strip()
    return summary, args
