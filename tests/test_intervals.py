"""The Wilson interval of a proportion."""

from __future__ import annotations

import pytest

from llm.intervals import wilson_interval


def test_known_values_and_bounds() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0  # type: ignore[index]
    assert wilson_interval(20, 20)[1] == 1.0  # type: ignore[index]


def test_no_trials_has_no_interval() -> None:
    assert wilson_interval(0, 0) is None
