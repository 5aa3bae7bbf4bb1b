"""Worst-versus-best gap tests and the Holm correction, on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from eval.metrics.functional import MetricInputs
from eval.registry import resolve_metrics
from eval.subgroups.frame import SubgroupFrame
from eval.subgroups.significance import (
    PERMUTATION,
    Z_TEST,
    gap_significance,
    holm,
    two_proportion_z,
)


def test_holm_matches_the_step_down_definition() -> None:
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_two_proportion_z_matches_the_chi_square_test() -> None:
    z, p = two_proportion_z(90, 100, 75, 100)
    table = np.array([[90, 10], [75, 25]])
    chi2, p_chi2, _, _ = stats.chi2_contingency(table, correction=False)
    assert z**2 == pytest.approx(chi2) and p == pytest.approx(p_chi2)
    assert two_proportion_z(10, 10, 20, 20) == (0.0, 1.0)


def _frame(gap: float, seed: int) -> SubgroupFrame:
    rng = np.random.default_rng(seed)
    n = 2000
    race = rng.choice(["A", "B"], n)
    sex = rng.choice(["F", "M"], n)
    ref = rng.choice(["yes", "no"], n)
    correct = rng.random(n) < np.where(race == "B", 0.9 - gap, 0.9)
    pred = np.where(correct, ref, np.where(ref == "yes", "no", "yes"))
    return SubgroupFrame(
        metrics=resolve_metrics(["accuracy", "f1"]),
        inputs=MetricInputs(pred.astype(object), ref.astype(object), None, "yes"),
        sensitive_features={"race": race.astype(object), "sex": sex.astype(object)},
        min_group_size=30,
    )


def test_real_gap_is_significant_and_no_gap_is_not() -> None:
    tests = gap_significance(_frame(0.15, seed=0), permutations=300, seed=0, alpha=0.05)
    race, sex = tests["race"]["accuracy"], tests["sex"]["accuracy"]
    assert race.test == Z_TEST and race.worst_group == "B" and race.best_group == "A"
    assert race.p_value is not None and race.p_value < 1e-6 and race.significant
    assert sex.significant is False
    # Holm over the two attributes: the smallest p doubles, the larger is at least that
    assert race.p_value_holm == pytest.approx(min(1.0, 2 * race.p_value))
    assert sex.p_value_holm is not None and sex.p_value is not None
    assert sex.p_value_holm >= sex.p_value
    f1 = tests["race"]["f1"]
    assert f1.test == PERMUTATION and f1.p_value is not None and f1.p_value < 0.01


def test_permutation_p_value_is_uniformish_without_a_gap() -> None:
    p_values = [
        gap_significance(_frame(0.0, seed=s), permutations=200, seed=s, alpha=0.05)["race"][
            "f1"
        ].p_value
        for s in range(20)
    ]
    assert all(p is not None for p in p_values)
    assert sum(p < 0.05 for p in p_values if p is not None) <= 4
