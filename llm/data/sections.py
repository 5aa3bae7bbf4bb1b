"""Sections of a clinical note.

Notes written by the synthetic cohort, and most real notes, are divided by
header lines in capitals ending in a colon (``HISTORY OF PRESENT ILLNESS:``).
The text of a section is what follows the header, on the same line and on the
lines after it, up to the next header. Task renderers use this to take the
findings of a radiology report, the hospital course of a discharge summary,
and so on.
"""

from __future__ import annotations

import re

# A header is 2+ capitals/digits/spaces/&/-/ / at the start of a line, then ':'.
HEADER_RE = re.compile(r"^(?P<name>[A-Z][A-Z0-9 &/\-]*[A-Z0-9]):[ \t]*", re.MULTILINE)


def split_sections(text: str) -> dict[str, str]:
    """Split a note into ``{HEADER: body}`` in the order headers appear.

    Text before the first header is returned under ``""`` when it is not blank.
    A header seen twice keeps both bodies, joined by a blank line.

    Args:
        text: the note text.

    Returns:
        Section bodies with surrounding whitespace stripped.
    """
    sections: dict[str, str] = {}
    matches = list(HEADER_RE.finditer(text))
    preamble = text[: matches[0].start()] if matches else text
    if preamble.strip():
        sections[""] = preamble.strip()
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end() : end].strip()
        name = m.group("name")
        sections[name] = f"{sections[name]}\n\n{body}" if name in sections else body
    return sections


def get_section(text: str, *names: str) -> str | None:
    """Return the body of the first of ``names`` that the note has, else ``None``."""
    sections = split_sections(text)
    for name in names:
        if name in sections:
            return sections[name]
    return None
