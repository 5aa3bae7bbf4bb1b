"""Date shifting keeps each date's written format."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from llm.data.deid.dates import find_dates, parse_date, shift_date_text


@pytest.mark.parametrize(
    ("original", "shifted"),
    [
        ("01/02/2131", "12/03/2130"),
        ("1/2/2131", "12/3/2130"),
        ("2131-01-02", "2130-12-03"),
        ("2131-01-02 08:15", "2130-12-03 08:15"),
        ("2131-01-02T08:15:00", "2130-12-03T08:15:00"),
        ("Jan 2, 2131", "Dec 3, 2130"),
        ("January 2nd, 2131", "December 3rd, 2130"),
        ("2nd of January", "3rd of December"),
        ("02-Jan-2131", "03-Dec-2130"),
        ("JAN 2 2131", "DEC 3 2130"),
        ("January 2131", "December 2130"),
        ("13/01/2131", "14/12/2130"),  # day first: 13 cannot be a month
        ("1-2-31", "12-3-30"),
    ],
)
def test_shift_keeps_format(original: str, shifted: str) -> None:
    assert shift_date_text(original, -30, reference_year=2131) == shifted


def test_weekday_is_recomputed() -> None:
    before = date(2131, 1, 2)
    text = f"{before:%A}, January 2, 2131"
    after = before + timedelta(days=-400)
    assert shift_date_text(text, -400) == f"{after:%A}, {after:%B} {after.day}, {after.year}"


def test_impossible_dates_are_not_dates() -> None:
    assert parse_date("02/30/2131") is None
    assert parse_date("13/13/2131") is None
    assert shift_date_text("not a date", 10) is None
    assert [d.match.group() for d in find_dates("BP 130/80, pain 5/10, J18.9, 12.1")] == []
