"""Choosing a tool and its arguments reliably, even with a 135M-parameter local model.

Small models pick tools badly when they generate freely, but fill arguments well when the
output is constrained. So the choice is made in steps, cheapest and surest first:

1. **Templates.** A tool's sentence templates ("set a timer for {minutes} minutes") are matched
   against the normalized utterance; a match gives the tool and typed arguments at once.
2. **Lexical match.** The utterance's content words are scored against each tool's name,
   description, parameters and keywords (rarer words weigh more). No match: no tool, the LLM
   just talks. One clear winner: that tool.
3. **Constrained choice.** Several close candidates: the LLM picks one of their names (or
   "none") under a grammar that allows nothing else.
4. **Constrained arguments.** The chosen tool's arguments come from the LLM under a JSON-schema
   grammar, then are checked and coerced to the declared types.

This works for any agent developer's tools, not only the built-in ones.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.agents.spoken import normalize
from appliance.agents.tools import FunctionTool
from appliance.providers.base import LLM, ChatMessage

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "to",
        "of",
        "for",
        "in",
        "on",
        "at",
        "by",
        "with",
        "and",
        "or",
        "but",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "me",
        "my",
        "you",
        "your",
        "we",
        "our",
        "us",
        "he",
        "she",
        "they",
        "them",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "can",
        "could",
        "would",
        "should",
        "will",
        "please",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "just",
        "now",
        "some",
        "any",
        "there",
        "here",
        "so",
        "if",
        "then",
        "than",
        "too",
        "very",
        "really",
        "about",
        "tell",
        "say",
        "give",
        "get",
        "let",
        "make",
        "want",
        "need",
        "like",
        "know",
        "think",
    ]
)


def stem(word: str) -> str:
    for suffix in ("ing", "ers", "er", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    return [stem(w) for w in normalize(text).split() if w not in STOPWORDS and not w.isdigit()]


@dataclass(frozen=True)
class ToolChoice:
    tool: FunctionTool
    arguments: dict[str, Any]
    routed_by: str


class ArgumentError(ValueError):
    """The arguments could not be made to fit the tool's schema."""


class ToolRouter:
    def __init__(self, min_score: float = 1.0, clear_margin: float = 1.5) -> None:
        self.min_score = min_score
        self.clear_margin = clear_margin

    async def route(self, text: str, tools: Sequence[FunctionTool], llm: LLM | None) -> ToolChoice | None:
        if not tools:
            return None
        templated = self.by_template(text, tools)
        if templated is not None:
            return templated
        spoken = normalize(text)
        scores = self.lexical_scores(spoken, tools)
        ranked = sorted((s, i) for i, s in enumerate(scores) if s >= self.min_score)[::-1]
        if not ranked:
            return None
        candidates = [tools[i] for _, i in ranked]
        routed_by = "lexical"
        close_call = len(ranked) > 1 and ranked[0][0] < ranked[1][0] * self.clear_margin
        weak = self.is_weak(spoken, candidates[0], tools)
        if (close_call or weak) and llm is not None:
            # One shared word is thin evidence ("how are you today" vs get_date): let the
            # constrained LLM confirm, with "none" as an answer.
            chosen = await choose_tool(text, candidates[:4], llm)
            if chosen is None:
                return None
            candidates, routed_by = [chosen], "llm"
        tool = candidates[0]
        arguments = await fill_arguments(text, tool, llm)
        return ToolChoice(tool, arguments, routed_by)

    @staticmethod
    def by_template(text: str, tools: Sequence[FunctionTool]) -> ToolChoice | None:
        """The tool whose sentence template the utterance is, with its arguments (no LLM asked)."""
        spoken = normalize(text)
        for tool in tools:
            arguments = match_templates(tool, spoken)
            if arguments is not None:
                return ToolChoice(tool, arguments, "template")
        return None

    @staticmethod
    def lexical_scores(spoken: str, tools: Sequence[FunctionTool]) -> list[float]:
        """0 unless a signature word matched; rarer signature words weigh more, docstring words a little."""
        said = set(content_words(spoken))
        signatures = [signature_words(tool) for tool in tools]
        document_count = {w: sum(w in s for s in signatures) for s in signatures for w in s}
        scores = []
        for tool, signature in zip(tools, signatures, strict=True):
            matched = said & signature
            if not matched:
                scores.append(0.0)
                continue
            described = (said & set(content_words(tool.description))) - matched
            score = sum(1.0 + math.log(len(tools) / document_count[w]) for w in matched) + 0.5 * len(described)
            scores.append(score)
        return scores

    @staticmethod
    def is_weak(spoken: str, tool: FunctionTool, tools: Sequence[FunctionTool]) -> bool:
        """Only one signature word matched, and other tools share it: not enough to act on."""
        matched = set(content_words(spoken)) & signature_words(tool)
        if len(matched) != 1:
            return False
        (word,) = matched
        return sum(word in signature_words(t) for t in tools) > 1


def signature_words(tool: FunctionTool) -> set[str]:
    """The words that name what a tool is about: its name, keywords, parameter names and enum
    options. Docstring and template words are too general to choose a tool on their own
    ("How many days are in a week?" is not a request for the date)."""
    properties = tool.parameters.get("properties", {})
    options = [str(o) for schema in properties.values() for o in schema.get("enum", [])]
    text = " ".join(
        [
            tool.name.replace("_", " "),
            *tool.keywords,
            *(p.replace("_", " ") for p in properties),
            *options,
        ]
    )
    return set(content_words(text))


# ----- templates ---------------------------------------------------------------------------------


_PREFIX = (
    r"(?:(?:hey|ok|okay|please|so|now|and|um|uh|can you|could you|would you|will you|do you know|"
    r"tell me|i want to know|i'd like to know)\s+)*"
)
_SUFFIX = r"(?:\s+(?:please|thanks|thank you|now|for me))*"


def expand_template(template: str) -> list[str]:
    """Every plain sentence a template stands for: `[x]` is optional, `(a|b)` are alternatives.

    Groups attach to the neighbouring word when written without a space: `minute[s]` is
    "minute" or "minutes".
    """
    tokens = re.findall(r"\[|\]|\(|\)|\||[^\[\]()|]+", template)
    position = 0

    def sequence() -> list[str]:
        nonlocal position
        results = [""]
        while position < len(tokens) and tokens[position] not in ("]", ")", "|"):
            token = tokens[position]
            position += 1
            if token == "[":
                options = [*alternatives("]"), ""]
            elif token == "(":
                options = alternatives(")")
            else:
                options = [token]
            results = [r + o for r in results for o in options]
        return results

    def alternatives(close: str) -> list[str]:
        nonlocal position
        options = sequence()
        while position < len(tokens) and tokens[position] == "|":
            position += 1
            options += sequence()
        position += 1  # the closing bracket
        return options

    return sorted({" ".join(t.split()) for t in sequence()})


@functools.lru_cache(maxsize=1024)
def template_regex(template: str, slot_kinds: tuple[tuple[str, str], ...] = ()) -> re.Pattern[str]:
    """One regex over normalized text for all of a template's sentences, with named slots.

    `slot_kinds` gives a slot's pattern by its type, so "volume {level} [percent]" takes "80"
    as the level and leaves "percent" to the template instead of trying "80 percent".
    """
    kinds = dict(slot_kinds)
    variants = []
    for sentence in expand_template(template):
        parts = re.split(r"(\{\w+\})", sentence)
        pattern = "".join(
            f"(?P<{p[1:-1]}>{kinds.get(p[1:-1], '.+?')})" if re.fullmatch(r"\{\w+\}", p) else _literal(p) for p in parts
        )
        variants.append(pattern)
    # A slot appears in several variants: name each variant's copy apart, merge after matching.
    numbered = [
        re.sub(r"\(\?P<(\w+)>", lambda m, i=i: f"(?P<{m.group(1)}__{i}>", v)  # type: ignore[misc]
        for i, v in enumerate(variants)
    ]
    return re.compile(rf"^{_PREFIX}(?:{'|'.join(numbered)}){_SUFFIX}$")


def _literal(text: str) -> str:
    """A template's words as a regex; its edge spaces (next to a slot) become required white space."""
    core = r"\s+".join(re.escape(word) for word in normalize(text).split())
    lead = r"\s+" if text[:1].isspace() and core else ""
    trail = r"\s+" if text[-1:].isspace() and core else ""
    return lead + core + trail if core else (r"\s+" if text.strip() == "" and text else "")


def _slot_kind(name: str, schema: dict[str, Any]) -> tuple[str, str]:
    if schema.get("type") == "integer":
        return name, r"\d+"
    if schema.get("type") == "number":
        return name, r"\d+(?:\.\d+)?"
    return name, ".+?"


def match_templates(tool: FunctionTool, spoken: str) -> dict[str, Any] | None:
    kinds = tuple(sorted(_slot_kind(name, schema) for name, schema in tool.parameters.get("properties", {}).items()))
    for template in tool.templates:
        match = template_regex(template, kinds).match(spoken)
        if match is None:
            continue
        found = {k.split("__")[0]: v for k, v in match.groupdict().items() if v is not None}
        try:
            return coerce_arguments(tool, found)
        except ArgumentError:
            continue
    return None


# ----- constrained decoding -------------------------------------------------------------------------


async def choose_tool(text: str, candidates: Sequence[FunctionTool], llm: LLM) -> FunctionTool | None:
    listing = "\n".join(f"- {t.name}: {t.description}" for t in candidates)
    messages = [
        ChatMessage(
            "system",
            f"Pick the function that does what the user asks, or none.\n{listing}\n- none: none of these",
        ),
        ChatMessage("user", text),
    ]
    name = await llm.choose(messages, [t.name for t in candidates] + ["none"])
    return next((t for t in candidates if t.name == name), None)


async def fill_arguments(text: str, tool: FunctionTool, llm: LLM | None) -> dict[str, Any]:
    properties = tool.parameters.get("properties", {})
    if not properties:
        return {}
    if llm is None:
        raise ArgumentError(f"{tool.name} needs arguments and there is no LLM to fill them")
    described = "; ".join(f"{n} ({s.get('type', 'any')}): {s.get('description', '')}" for n, s in properties.items())
    messages = [
        ChatMessage(
            "system",
            f"Fill in the arguments of {tool.name}: {tool.description} Arguments: {described}. "
            "Use the numbers and words the user said.",
        ),
        ChatMessage("user", normalize(text)),
    ]
    spoken = normalize(text)
    found = spotted_arguments(spoken, properties)
    remaining = [name for name in tool.required if name not in found]
    if remaining:
        schema = {
            "type": "object",
            "properties": {n: properties[n] for n in remaining},
            "required": remaining,
        }
        found = {**(await llm.complete_json(messages, schema)), **found}
    return coerce_arguments(tool, found)


_NEGATIVE = frozenset({"off", "no", "not", "disable", "stop", "close", "false", "never", "don't", "dont"})
_POSITIVE = frozenset({"on", "yes", "enable", "start", "open", "true"})


def spotted_arguments(spoken: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Arguments the words themselves settle: an enum option said outright, an on/off said once.

    A small model under a grammar still guesses; when the utterance names exactly one option
    of an enum ("kitchen") or has only positive or only negative words for a boolean ("off"),
    that is taken as the value and the model is not asked.
    """
    words = spoken.split()
    found: dict[str, Any] = {}
    for name, schema in properties.items():
        if "enum" in schema:
            said = [o for o in schema["enum"] if re.search(rf"\b{re.escape(normalize(str(o)))}\b", spoken)]
            if len(said) == 1:
                found[name] = said[0]
        elif schema.get("type") == "boolean":
            negative, positive = _NEGATIVE.intersection(words), _POSITIVE.intersection(words)
            if negative and not positive:
                found[name] = False
            elif positive and not negative:
                found[name] = True
    return found


def coerce_arguments(tool: FunctionTool, raw: dict[str, Any]) -> dict[str, Any]:
    """Fit arguments to the schema (types, enums); drop unknown keys; ArgumentError if a required one is missing."""
    properties = tool.parameters.get("properties", {})
    out: dict[str, Any] = {}
    for name, schema in properties.items():
        if name not in raw or raw[name] in (None, ""):
            continue
        out[name] = _coerce(raw[name], schema, name)
    missing = [n for n in tool.required if n not in out]
    if missing:
        raise ArgumentError(f"{tool.name} is missing {', '.join(missing)}")
    return out


def _coerce(value: Any, schema: dict[str, Any], name: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        options = schema["enum"]
        text = normalize(str(value))
        for option in options:
            if normalize(str(option)) == text:
                return option
        raise ArgumentError(f"{name} must be one of {options}, not {value!r}")
    try:
        if kind in ("integer", "number") and isinstance(value, int | float) and not isinstance(value, bool):
            return int(value) if kind == "integer" else float(value)  # a number already (JSON from an LLM)
        if kind == "integer":
            return int(float(normalize(str(value)))) if not isinstance(value, bool) else int(value)
        if kind == "number":
            return float(normalize(str(value)))
        if kind == "boolean":
            return value if isinstance(value, bool) else normalize(str(value)) in ("true", "yes", "on", "1")
    except ValueError:
        raise ArgumentError(f"{name} must be a {kind}, not {value!r}") from None
    if kind == "string":
        return str(value).strip()
    return value
