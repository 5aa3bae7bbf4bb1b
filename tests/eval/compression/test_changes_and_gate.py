"""Paired accuracy changes by subgroup, and the gate that fails a variant one group pays for.

The prediction sets are built by hand at the report layer: the same examples answered by a
base model and a variant, the variant's answers changed on chosen examples only, so every
expected change is known exactly.
"""

from __future__ import annotations

from typing import Any

import pytest

from eval.compression.changes import MISMATCHED_IDS, task_changes
from eval.compression.gate import NO_INTERVAL, check_compression_gate
from llm.errors import BadInputError


def _rows(groups: dict[str, int], wrong: dict[str, set[int]]) -> list[dict[str, Any]]:
    """``groups[name]`` examples per sex; the ones listed in ``wrong[name]`` answered wrong."""
    rows = []
    for sex, n in groups.items():
        for i in range(n):
            answer = "no" if i in wrong.get(sex, set()) else "yes"
            rows.append(
                {
                    "id": f"{sex}-{i}",
                    "prediction": answer,
                    "reference": "yes",
                    "demographics": {"sex": sex, "age_band": "18-39" if i % 2 else "65+"},
                }
            )
    return rows


GROUPS = {"female": 40, "male": 600}
# the base model misses 4 men; the variant gets those right but misses 6 women:
# overall accuracy moves by -2/640 (holds), women lose 15 points
BASE = _rows(GROUPS, {"male": {0, 1, 2, 3}})
HURTS_WOMEN = _rows(GROUPS, {"female": {0, 2, 4, 6, 8, 10}})


def _changes(variant: list[dict[str, Any]], **kw: Any) -> Any:
    options = {"attributes": ["sex", "age_band", "sex*age_band"], "min_group_size": 5, **kw}
    return task_changes("diagnosis", BASE, variant, **options)


def test_changes_are_exact_per_group_and_overall() -> None:
    changes = _changes(HURTS_WOMEN)
    assert changes.overall.change == pytest.approx(-2 / 640)
    female = changes.by_attribute["sex"]["female"]
    assert (female.n, female.base, female.variant) == (40, 1.0, 34 / 40)
    assert female.change == pytest.approx(-0.15)
    male = changes.by_attribute["sex"]["male"]
    assert male.change == pytest.approx(4 / 600)
    # every wrong answer of the variant is at an even index: the 65+ half of women
    assert changes.by_attribute["sex*age_band"]["female*65+"].change == pytest.approx(-6 / 20)
    assert changes.by_attribute["sex*age_band"]["female*18-39"].change == 0.0


def test_the_group_that_loses_most_is_named() -> None:
    worst = _changes(HURTS_WOMEN).worst
    assert worst is not None
    assert (worst.attribute, worst.group) == ("sex*age_band", "female*65+")


def test_paired_interval_brackets_the_change_and_excludes_zero_for_a_clear_loss() -> None:
    female = _changes(HURTS_WOMEN, bootstrap=2000).by_attribute["sex"]["female"]
    assert female.ci is not None
    low, high = female.ci
    assert low <= female.change <= high
    assert high < 0
    # no change at all: the paired interval is exactly [0, 0]
    same = _changes(BASE, bootstrap=200).by_attribute["sex"]["female"]
    assert same.ci == (0.0, 0.0)


def test_a_variant_that_hurts_one_group_fails_the_gate_while_overall_holds() -> None:
    changes = _changes(HURTS_WOMEN, bootstrap=2000)
    assert abs(changes.overall.change) < 0.01  # the overall score holds within one point
    outcome = check_compression_gate([changes], margin=0.02, judge="ci")
    assert not outcome.passed
    failed = {(f.attribute, f.group) for f in outcome.failures}
    assert ("sex", "female") in failed
    assert ("sex", "male") not in failed
    assert all(f.observed is not None and f.observed < -0.02 for f in outcome.failures)
    # the verdict names the failure that lost most by the judged value, and counts the rest
    first = min(outcome.failures, key=lambda f: f.observed or 0.0)
    more = len(outcome.failures) - 1
    assert outcome.verdict() == (
        f"FAIL: {first.attribute}={first.group} (diagnosis)" + (f" and {more} more" if more else "")
    )
    assert check_compression_gate([_changes(BASE, bootstrap=200)], margin=0.02).verdict() == "pass"


def test_an_unchanged_variant_passes() -> None:
    changes = _changes(BASE, bootstrap=200)
    assert check_compression_gate([changes], margin=0.02).passed
    assert changes.worst is None


def test_judges_differ_on_a_loss_the_interval_cannot_show() -> None:
    # one woman in 40 answered wrong: -2.5 points, but the interval reaches 0
    changes = _changes(_rows(GROUPS, {"female": {0}, "male": {0, 1, 2, 3}}), bootstrap=2000)
    female = changes.by_attribute["sex"]["female"]
    assert female.ci is not None and female.ci[1] >= 0 > female.ci[0]
    assert check_compression_gate([changes], margin=0.02, judge="ci").passed
    assert not check_compression_gate([changes], margin=0.02, judge="point").passed
    assert not check_compression_gate([changes], margin=0.02, judge="ci_conservative").passed


def test_small_groups_are_reported_but_not_gated() -> None:
    changes = _changes(HURTS_WOMEN, min_group_size=50, bootstrap=200)
    assert changes.by_attribute["sex"]["female"].small
    outcome = check_compression_gate([changes], margin=0.02)
    assert all(f.group != "female" for f in outcome.failures)


def test_without_intervals_a_ci_judged_gate_fails() -> None:
    outcome = check_compression_gate([_changes(BASE, bootstrap=0)], margin=0.02)
    assert not outcome.passed
    assert {f.reason for f in outcome.failures} == {NO_INTERVAL}


def test_prediction_sets_on_different_examples_are_refused() -> None:
    with pytest.raises(BadInputError) as info:
        _changes(HURTS_WOMEN[:-1])
    assert str(info.value) == MISMATCHED_IDS.format(
        task="diagnosis", detail="1 only in the base run, 0 only in the variant's"
    )


def test_bad_margin_is_refused() -> None:
    with pytest.raises(BadInputError, match="margin"):
        check_compression_gate([], margin=1.5)
