"""Dates in clinical text: find them, parse them, and shift them keeping their format.

One list of regular expressions serves both the date recognizer (which finds
spans) and date shifting (which parses a detected span and writes the shifted
date back in the same shape: ``01/02/2131`` stays ``MM/DD/YYYY``,
``Jan 2nd`` stays an abbreviated month with an ordinal day, a weekday in front
is recomputed). Each pattern names its parts with groups ``y``, ``m``, ``d``,
``mon`` (month name), ``ord`` (ordinal suffix), ``wd`` (weekday) and ``time``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

_MONTH_FULL = [calendar.month_name[i] for i in range(1, 13)]
_MONTH_ABBR = [calendar.month_abbr[i] for i in range(1, 13)]
_WEEKDAY_FULL = list(calendar.day_name)
_WEEKDAY_ABBR = list(calendar.day_abbr)


def _cased(words: list[str]) -> str:
    # Title and UPPER case only: lower-case "may"/"mar" are ordinary words.
    variants = sorted({v for w in words for v in (w, w.upper())}, key=len, reverse=True)
    return "|".join(variants)


# A dot only after an abbreviation: after "January." it ends the sentence.
MONTH = rf"(?P<mon>{_cased(_MONTH_FULL)}|(?:{_cased([*_MONTH_ABBR, 'Sept'])})\.?)(?![A-Za-z])"
_WEEKDAY_ABBRS = [*_WEEKDAY_ABBR, "Tues", "Thur", "Thurs"]
_WEEKDAY_NAME = rf"(?P<wd>{_cased(_WEEKDAY_FULL)}|(?:{_cased(_WEEKDAY_ABBRS)})\.?)(?![A-Za-z])"
WEEKDAY = rf"(?:{_WEEKDAY_NAME},?\s+(?:the\s+)?)?"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?(?:[AaPp]\.?[Mm]\.?))?(?:Z|[+-]\d{2}:?\d{2})?"
TIME = rf"(?:(?:T|\s+|,\s+|\s+at\s+)(?P<time>{_CLOCK})(?![\d:]))?"
ORD = r"(?P<ord>st|nd|rd|th|ST|ND|RD|TH)?"

DATE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        # 2131-01-02, 2131/01/02, 2131.01.02, with an optional time
        rf"(?<![\d/.\-])(?P<y>\d{{4}})(?P<s>[-/.])(?P<m>\d{{1,2}})(?P=s)(?P<d>\d{{1,2}})(?![\d/])(?!\.\d){TIME}",
        # 01/02/2131, 1-2-31, 01.02.2131 (a dot only with a 4-digit year), with an optional time
        rf"(?<![\d/.\-])(?P<m>\d{{1,2}})(?P<s>[-/])(?P<d>\d{{1,2}})(?P=s)(?P<y>\d{{4}}|\d{{2}})(?![\d/])(?!\.\d){TIME}",
        rf"(?<![\d/.\-])(?P<m>\d{{1,2}})\.(?P<d>\d{{1,2}})\.(?P<y>\d{{4}})(?![\d/])(?!\.\d){TIME}",
        # Monday, January 2nd, 2131 at 08:15 / Jan 2 2131 / January 2
        rf"{WEEKDAY}{MONTH}\s+(?P<d>\d{{1,2}}){ORD}(?![\d:])(?:,?\s+(?P<y>\d{{4}})(?!\d))?{TIME}",
        # 2 Jan 2131 / 2nd of January / the 2nd of January, 2131
        rf"{WEEKDAY}(?<![\d.])(?P<d>\d{{1,2}}){ORD}(?:\s+of)?[\s\-]+{MONTH}(?:,?[\s\-]+(?P<y>\d{{4}})(?!\d))?{TIME}",
        # January 2131 / Jan. 2131
        rf"{MONTH}\s+(?P<y>\d{{4}})(?!\d)",
        # 01/2131
        r"(?<![\d/.\-])(?P<m>\d{1,2})/(?P<y>\d{4})(?![\d/])",
    )
)


@dataclass(frozen=True)
class ParsedDate:
    """A date found in text: the regex match and what its parts mean."""

    match: re.Match[str]
    year: int | None
    month: int
    day: int | None
    day_first: bool  # numeric date written day before month (13/01/2131)


def _month_of(name: str) -> int:
    key = name.rstrip(".").lower()[:3]
    return [m.lower() for m in _MONTH_ABBR].index(key) + 1


def _interpret(m: re.Match[str]) -> ParsedDate | None:
    groups = m.groupdict()
    year: int | None = None
    if groups.get("y"):
        y = groups["y"]
        year = int(y) if len(y) == 4 else 2000 + int(y)
    if groups.get("mon"):
        month = _month_of(groups["mon"])
        day = int(groups["d"]) if groups.get("d") else None
        day_first = False
    else:
        month = int(groups["m"])
        day = int(groups["d"]) if groups.get("d") else None
        day_first = False
        if day is not None and month > 12 and day <= 12:
            month, day, day_first = day, month, True
    if not 1 <= month <= 12:
        return None
    if day is not None:
        try:
            date(year if year is not None else 2000, month, day)  # 2000: leap, admits 02/29
        except ValueError:
            return None
    return ParsedDate(m, year, month, day, day_first)


def find_dates(text: str) -> list[ParsedDate]:
    """Every valid date in ``text`` (overlapping matches of different patterns included).

    Args:
        text: any text.

    Returns:
        Parsed dates in pattern order; impossible dates (month 13, 31 Feb) are left out.
    """
    found: list[ParsedDate] = []
    for pattern in DATE_PATTERNS:
        for m in pattern.finditer(text):
            parsed = _interpret(m)
            if parsed is not None:
                found.append(parsed)
    return found


def parse_date(text: str) -> ParsedDate | None:
    """Parse ``text`` when the whole of it is one date, else ``None``."""
    stripped = text.strip()
    for pattern in DATE_PATTERNS:
        m = pattern.fullmatch(stripped)
        if m is not None:
            parsed = _interpret(m)
            if parsed is not None:
                return parsed
    return None


def _like(original: str, new: str) -> str:
    return new.upper() if original.isupper() else new


def _ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _render_month(original: str, month: int) -> str:
    dot = "." if original.endswith(".") else ""
    bare = original.rstrip(".")
    full = bare.lower() in [m.lower() for m in _MONTH_FULL]
    name = _MONTH_FULL[month - 1] if full else _MONTH_ABBR[month - 1]
    return _like(bare, name) + dot


def _render_weekday(original: str, weekday: int) -> str:
    dot = "." if original.endswith(".") else ""
    bare = original.rstrip(".")
    full = bare.lower() in [w.lower() for w in _WEEKDAY_FULL]
    name = _WEEKDAY_FULL[weekday] if full else _WEEKDAY_ABBR[weekday]
    return _like(bare, name) + dot


def _padded(original: str, value: int) -> str:
    return f"{value:02d}" if len(original) == 2 else str(value)


def shift_date_text(text: str, days: int, *, reference_year: int = 2000) -> str | None:
    """Shift the date written in ``text`` by ``days``, keeping the way it is written.

    Args:
        text: the date as written (the whole string must be one date).
        days: offset in days (negative moves into the past).
        reference_year: year assumed for dates written without one (``Jan 2``).

    Returns:
        The shifted date in the original format, or ``None`` when ``text`` is
        not a date this module understands (the caller then removes it).
    """
    parsed = parse_date(text)
    if parsed is None:
        return None
    m = parsed.match
    year = parsed.year if parsed.year is not None else reference_year
    day = parsed.day if parsed.day is not None else 15  # month precision: shift mid-month
    try:
        original = date(year, parsed.month, day)
    except ValueError:  # 29 Feb written without a year, reference year not leap
        original = date(2000, parsed.month, day)
    shifted = original + timedelta(days=days)
    replacements: dict[str, str] = {}
    groups = m.groupdict()
    if groups.get("y"):
        y = groups["y"]
        replacements["y"] = f"{shifted.year % 100:02d}" if len(y) == 2 else str(shifted.year)
    month_group, day_group = ("d", "m") if parsed.day_first else ("m", "d")
    if groups.get(month_group) and not groups.get("mon"):
        replacements[month_group] = _padded(groups[month_group], shifted.month)
    if groups.get("mon"):
        replacements["mon"] = _render_month(groups["mon"], shifted.month)
    if groups.get(day_group) and parsed.day is not None:
        replacements[day_group] = _padded(groups[day_group], shifted.day)
    if groups.get("ord"):
        replacements["ord"] = _like(groups["ord"], _ordinal(shifted.day))
    if groups.get("wd"):
        replacements["wd"] = _render_weekday(groups["wd"], shifted.weekday())
    out: list[str] = []
    pos = 0
    spans = sorted((m.span(g), new) for g, new in replacements.items())
    for (start, end), new in spans:
        out.append(m.string[pos:start])
        out.append(new)
        pos = end
    out.append(m.string[pos:])
    leading = text[: len(text) - len(text.lstrip())]
    trailing = text[len(text.rstrip()) :]
    return leading + "".join(out) + trailing
