"""Turning a generation into a prediction: ``text``, ``first_line`` or ``choice``.

``choice`` maps free text onto the task's allowed answers, case-insensitively,
in this order: the first line equals an answer (ignoring case, surrounding
punctuation, and ``_`` versus space or ``-``); the line holds exactly one
answer as whole words; the line is close to exactly one answer (difflib ratio
at least :data:`CLOSE_ENOUGH`). Anything else is :data:`INVALID`: a wrong
prediction that is also counted, so a model that has not learnt the output
format is visible as such rather than as a poor classifier.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

INVALID = "invalid"
CLOSE_ENOUGH = 0.8
_SEPARATORS = re.compile(r"[\s_\-]+")
_EDGE_PUNCTUATION = " \t.,;:!?\"'`()[]{}*"


@dataclass(frozen=True)
class ParsedAnswer:
    """A prediction and whether it fell into the invalid bucket."""

    prediction: str
    invalid: bool = False


def _normalise(text: str) -> str:
    return _SEPARATORS.sub(" ", text.strip(_EDGE_PUNCTUATION).lower()).strip()


def first_line(text: str) -> str:
    """The first non-empty line, stripped (empty when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def match_choice(text: str, choices: Sequence[str]) -> ParsedAnswer:
    """The allowed answer ``text`` names, or :data:`INVALID`.

    Args:
        text: the generation.
        choices: the allowed answers (labels such as ``heart_failure``, ``yes``).

    Returns:
        The matched answer, spelled as in ``choices``, or ``invalid``.
    """
    line = _normalise(first_line(text))
    if not line:
        return ParsedAnswer(INVALID, invalid=True)
    normalised = {_normalise(c): c for c in choices}
    if line in normalised:
        return ParsedAnswer(normalised[line])
    words = f" {line} "
    named = [c for n, c in normalised.items() if f" {n} " in words]
    if len(named) == 1:
        return ParsedAnswer(named[0])
    ratios = {c: difflib.SequenceMatcher(None, line, n).ratio() for n, c in normalised.items()}
    close = [c for c, r in ratios.items() if r >= CLOSE_ENOUGH]
    if len(close) == 1:
        return ParsedAnswer(close[0])
    return ParsedAnswer(INVALID, invalid=True)


def parse_answer(text: str, how: str, choices: Sequence[str] | None = None) -> ParsedAnswer:
    """Parse one generation the way a task says.

    Args:
        text: the generation (already cut at stop strings).
        how: ``text``, ``first_line`` or ``choice``.
        choices: allowed answers (``choice`` only).

    Returns:
        The prediction.

    Raises:
        ValueError: ``choice`` without choices, or an unknown ``how``.
    """
    if how == "text":
        return ParsedAnswer(text.strip())
    if how == "first_line":
        return ParsedAnswer(first_line(text))
    if how == "choice":
        if not choices:
            raise ValueError("parse 'choice' needs the allowed answers")
        return match_choice(text, choices)
    raise ValueError(f"unknown parse {how!r}")
