"""Is the gap between the worst and the best group more than chance?

Per attribute and metric, the worst and best non-small groups are compared:

* proportion metrics (accuracy, rates, precision, exact match): a pooled
  two-proportion z-test on the groups' successes and trials;
* every other metric (F1, macro-F1, ROUGE-L, AUROC, ECE): a permutation test.
  The two groups' examples are pooled and split again at random into groups of
  the original sizes (``permutations`` times, as multivariate hypergeometric
  draws over atom counts); the p-value is the share of splits whose gap is at
  least the observed one, ``(1 + hits) / (1 + permutations)``.

The p-values of one metric are Holm-adjusted across attributes (step-down,
controls the family-wise error rate). Caveat, documented in
docs/evaluation.md: the pair is chosen *because* it is furthest apart, so with
many groups the unadjusted pairwise test is optimistic; Holm corrects for the
number of attributes, not for that choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from eval.metrics.functional import AdditiveMetric
from eval.subgroups.frame import SubgroupFrame

Z_TEST = "two_proportion_z"
PERMUTATION = "permutation"


@dataclass(frozen=True)
class GapTest:
    """The test of one attribute's worst-versus-best gap on one metric."""

    test: str | None
    worst_group: str | None
    best_group: str | None
    gap: float | None
    statistic: float | None
    p_value: float | None
    p_value_holm: float | None = None
    significant: bool | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (undefined numbers as null)."""
        return asdict(self)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given).

    ``p_(i)`` sorted ascending is adjusted to ``max_{j<=i} min(1, (m - j + 1) p_(j))``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def two_proportion_z(x1: float, n1: float, x2: float, n2: float) -> tuple[float, float]:
    """Pooled two-proportion z-test, two-sided. Returns ``(z, p_value)``."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0.0:
        # both proportions 0 or both 1: no evidence of a difference
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    # two-sided normal tail, 2 * (1 - Phi(|z|)), without importing scipy.stats
    return z, math.erfc(abs(z) / math.sqrt(2))


def gap_significance(
    frame: SubgroupFrame,
    *,
    permutations: int,
    seed: int,
    alpha: float,
) -> dict[str, dict[str, GapTest]]:
    """Test every attribute's worst-versus-best gap for every metric, Holm-adjusted.

    Args:
        frame: the computed subgroup frame.
        permutations: splits drawn for permutation tests.
        seed: seed of the permutations (a stream apart from the bootstrap's).
        alpha: significance level applied to the Holm-adjusted p-values.

    Returns:
        ``{attribute: {metric: GapTest}}``.
    """
    rng = np.random.default_rng([seed, 1])
    raw = {
        attribute: {
            m.name: _test_one(frame, attribute, m.name, permutations, rng) for m in frame.metrics
        }
        for attribute in frame.attributes
    }
    for metric in (m.name for m in frame.metrics):
        tested = [(a, t) for a, by in raw.items() if (t := by[metric]).p_value is not None]
        adjusted = holm([t.p_value for _, t in tested if t.p_value is not None])
        for (attribute, t), p in zip(tested, adjusted, strict=True):
            raw[attribute][metric] = GapTest(
                **{**asdict(t), "p_value_holm": p, "significant": p < alpha}
            )
    return raw


def _test_one(
    frame: SubgroupFrame,
    attribute: str,
    metric_name: str,
    permutations: int,
    rng: np.random.Generator,
) -> GapTest:
    disparity = frame.disparity(attribute, metric_name)
    worst, best = disparity.worst_group, disparity.best_group
    if worst is None or best is None or worst == best:
        return GapTest(None, worst, best, None, None, None, note="fewer than two groups to compare")
    names = frame.group_names(attribute)
    metric = frame.metric(metric_name)
    table = frame.table
    w, b = names.index(worst), names.index(best)
    values = frame.values(attribute, metric_name)
    gap = float(abs(values[w] - values[b]))
    if isinstance(metric, AdditiveMetric) and metric.proportion:
        xw, nw = metric.successes_trials(table.group_stats(metric, attribute, w))
        xb, nb = metric.successes_trials(table.group_stats(metric, attribute, b))
        z, p = two_proportion_z(float(xw), float(nw), float(xb), float(nb))
        return GapTest(Z_TEST, worst, best, gap, z, p)
    atoms = np.concatenate([table.members[attribute][w], table.members[attribute][b]])
    pooled = table.counts[atoms].astype(np.int64)
    n_worst = int(table.counts[table.members[attribute][w]].sum())
    worst_counts = rng.multivariate_hypergeometric(pooled, n_worst, size=permutations)
    best_counts = pooled[None, :] - worst_counts
    null = np.abs(
        table.evaluate_atoms(metric, atoms, worst_counts.astype(np.float64))
        - table.evaluate_atoms(metric, atoms, best_counts.astype(np.float64))
    )
    defined = null[~np.isnan(null)]
    # a tiny tolerance keeps splits equal to the observed gap counted as at least as large
    hits = int((defined >= gap - 1e-12).sum())
    return GapTest(PERMUTATION, worst, best, gap, gap, (1 + hits) / (1 + len(defined)))
