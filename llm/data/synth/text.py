"""Note text assembled piece by piece, with the exact offsets of every PHI value.

Templates are ``str.format``-style strings. A field whose value is a :class:`Phi`
is PHI: its text is inserted and its span recorded; any other value is plain
text. Because spans are recorded while the text is built (never searched for
afterwards), ``text[start:end]`` is always exactly the inserted value.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from llm.data.phi import PhiEntity, PhiSpan

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class Phi:
    """A PHI value to insert into a note, with its entity type."""

    value: str
    entity_type: PhiEntity


@dataclass
class NoteBuilder:
    """Accumulates note text and the PHI spans inside it."""

    parts: list[str] = field(default_factory=list)
    spans: list[PhiSpan] = field(default_factory=list)
    length: int = 0

    def add(self, text: str) -> None:
        """Append plain (non-PHI) text."""
        self.parts.append(text)
        self.length += len(text)

    def add_phi(self, phi: Phi) -> None:
        """Append a PHI value and record its span."""
        start = self.length
        self.add(phi.value)
        self.spans.append(PhiSpan(start=start, end=self.length, entity_type=phi.entity_type))

    def fill(self, template: str, **values: str | Phi) -> None:
        """Append ``template`` with its ``{fields}`` filled from ``values``.

        Args:
            template: text with ``{name}`` fields (no format specs).
            values: the field values; :class:`Phi` values are recorded as spans.

        Raises:
            KeyError: a field of the template has no value.
        """
        for literal, name, _spec, _conv in _FORMATTER.parse(template):
            if literal:
                self.add(literal)
            if name is None:
                continue
            value = values[name]
            if isinstance(value, Phi):
                self.add_phi(value)
            else:
                self.add(value)

    def line(self, template: str = "", **values: str | Phi) -> None:
        """Append a filled template and a newline."""
        self.fill(template, **values)
        self.add("\n")

    def section(self, header: str, template: str = "", **values: str | Phi) -> None:
        """Start a section: ``HEADER:`` then the filled template on the same line."""
        self.add(f"\n{header}:" if self.length else f"{header}:")
        if template:
            self.add(" ")
            self.fill(template, **values)
        self.add("\n")

    def text(self) -> str:
        """The note text so far (trailing whitespace removed, spans stay valid)."""
        return "".join(self.parts).rstrip()


def pick(rng: np.random.Generator, options: list[str] | tuple[str, ...]) -> str:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def join_phrases(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b, and c``."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f", and {items[-1]}"
