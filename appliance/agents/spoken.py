"""Spoken text as a tool router wants it: lower case, no punctuation, numbers as digits.

STT writes "five minutes", "twenty-five", "a hundred"; templates and argument filling work
far better on "5 minutes", "25", "100".
"""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000}


def normalize(text: str) -> str:
    """'Set a timer for twenty-five minutes, please!' -> 'set a timer for 25 minutes please'."""
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?|%", text.lower().replace("-", " "))
    return " ".join(_numbers_to_digits(words))


def _numbers_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(words):
        value, used = _read_number(words, index)
        if used:
            out.append(str(value))
            index += used
        else:
            out.append(words[index])
            index += 1
    return out


def _read_number(words: list[str], start: int) -> tuple[int, int]:
    """The number spelled from words[start], and how many words it took (0 if none)."""
    total, current, used = 0, 0, 0
    index = start
    while index < len(words):
        word = words[index]
        if word in _UNITS and (current % 10 == 0 or current == 0):
            if current and current < 20 and _UNITS[word] < 10 and current in _UNITS.values():
                break
            current += _UNITS[word]
        elif word in _TENS and current % 100 == 0:
            current += _TENS[word]
        elif word in _SCALES and (current or (index > start and words[index - 1] == "a")):
            current = max(current, 1) * _SCALES[word]
            if _SCALES[word] >= 1000:
                total += current
                current = 0
        elif (word == "and" and used and index + 1 < len(words) and words[index + 1] in (*_UNITS, *_TENS)) or (
            word == "a" and index + 1 < len(words) and words[index + 1] in _SCALES and not used
        ):
            pass
        else:
            break
        index += 1
        used = index - start
    if used and words[start + used - 1] in ("and", "a"):
        used -= 1
    return total + current, used
