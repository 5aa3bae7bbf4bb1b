"""Metrics overall and per subgroup with bootstrap intervals, shaped like fairlearn's MetricFrame.

:class:`SubgroupFrame` takes keyword-only arguments like
``fairlearn.metrics.MetricFrame`` and offers the same views: ``overall``,
``by_group``, ``difference`` and ``ratio`` between groups (``max - min`` and
``min / max``, fairlearn's ``method="between_groups"``). Point estimates equal
MetricFrame's on the groups that are not small (tests check this on random
data). Beyond MetricFrame: groups smaller than ``min_group_size`` are kept in
``by_group`` but marked small and left out of disparities; metrics undefined in
a group are NaN with a reason; and bootstrap intervals come from whole-data-set
resampling expressed as atom counts (:mod:`eval.subgroups.bootstrap`), all resamples of a
block evaluated at once with numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from eval.metrics.functional import (
    AdditiveMetric,
    FalsePositiveRate,
    Metric,
    MetricInputs,
    TruePositiveRate,
    safe_divide,
)
from eval.subgroups.atoms import AtomTable
from eval.subgroups.bootstrap import chunk_size, percentile_ci, resample_counts

OVERALL = "<overall>"
ALL = "all"

BAD_CONFIDENCE = "confidence must be strictly between 0 and 1, got {value}"
BAD_N_BOOT = "n_boot must be 0 (no intervals) or more, got {value}"
BAD_MIN_GROUP_SIZE = "min_group_size must be 0 or more, got {value}"
NO_METRICS = "give at least one metric"
DUPLICATE_METRIC = "metric {name!r} is given twice"

UNDEFINED = {
    "true_positive_rate": "no reference has the positive label",
    "false_positive_rate": "no reference has a negative label",
    "specificity": "no reference has a negative label",
    "precision": "nothing was predicted positive",
    "f1": "no reference or prediction has the positive label",
    "auroc": "needs references of both classes",
}

Progress = Callable[[Iterable[Any], int], Iterable[Any]]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval.

    Attributes:
        value: the metric on the data (NaN when undefined).
        ci: percentile interval ``(lower, upper)``, or ``None`` without bootstrap
            or when every resample was undefined.
        undefined_resamples: resamples in which the value was undefined (left
            out of the interval).
        note: why the value is undefined, when it is.
        trials: for a proportion (``Metric.proportion``), the examples it is a share
            of: the group's size for accuracy, its positives for the true positive
            rate. ``None`` for other metrics.
    """

    value: float
    ci: tuple[float, float] | None = None
    undefined_resamples: int = 0
    note: str | None = None
    trials: int | None = None


@dataclass(frozen=True)
class GroupResult:
    """One subgroup: its size, whether it is too small to compare, its metrics."""

    n: int
    small: bool
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class Disparity:
    """How far apart the groups of one attribute are on one metric (non-small groups only).

    Attributes:
        difference: ``max - min`` over groups.
        ratio: ``min / max`` over groups (NaN when both are 0).
        worst_group / best_group: by the metric's direction (lowest accuracy,
            highest false positive rate); ``None`` when no group has a value.
        difference_ci / ratio_ci: bootstrap intervals, or ``None``.
        groups_compared: how many groups entered.
    """

    difference: float
    ratio: float
    worst_group: str | None
    best_group: str | None
    difference_ci: tuple[float, float] | None
    ratio_ci: tuple[float, float] | None
    groups_compared: int


def _spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(max - min, min / max)`` over the last axis, ignoring NaN groups."""
    if values.shape[-1] == 0:
        nan = np.full(values.shape[:-1], np.nan)
        return nan, nan
    high = np.fmax.reduce(values, axis=-1)
    low = np.fmin.reduce(values, axis=-1)
    return high - low, safe_divide(low, high)


class SubgroupFrame:
    """Metrics overall and by group, with disparities and bootstrap intervals.

    Args:
        metrics: the metrics to compute.
        inputs: predictions, references, scores, positive label.
        sensitive_features: per attribute name, each example's group name
            (intersections are just more attributes, ``"F*Black"`` groups).
        min_group_size: groups with fewer examples are marked small and left out
            of disparities.
        n_boot: bootstrap resamples (0: point estimates only).
        confidence: interval coverage.
        random_state: seed of the resampling; the same seed gives the same intervals.
        progress: wraps the loop over resample blocks, given its length.

    Raises:
        ValueError: bad arguments, or inputs that lack what a metric needs.
    """

    def __init__(
        self,
        *,
        metrics: Sequence[Metric],
        inputs: MetricInputs,
        sensitive_features: Mapping[str, np.ndarray],
        min_group_size: int = 0,
        n_boot: int = 0,
        confidence: float = 0.95,
        random_state: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        if not 0.0 < confidence < 1.0:
            raise ValueError(BAD_CONFIDENCE.format(value=confidence))
        if n_boot < 0:
            raise ValueError(BAD_N_BOOT.format(value=n_boot))
        if min_group_size < 0:
            raise ValueError(BAD_MIN_GROUP_SIZE.format(value=min_group_size))
        if not metrics:
            raise ValueError(NO_METRICS)
        names = [m.name for m in metrics]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(DUPLICATE_METRIC.format(name=name))
        for metric in metrics:
            metric.check_inputs(inputs)
        self.metrics = list(metrics)
        self.n = len(inputs)
        self.positive_label = inputs.positive_label
        self.min_group_size = min_group_size
        self.n_boot = n_boot
        self.confidence = confidence
        self._computed = {m.name: m for m in metrics}
        if inputs.positive_label is not None:
            # equalized odds needs both rates even when they were not asked for
            for extra in (TruePositiveRate(), FalsePositiveRate()):
                self._computed.setdefault(extra.name, extra)
        features = {OVERALL: np.full(self.n, ALL, dtype=object), **dict(sensitive_features)}
        self.attributes = [a for a in features if a != OVERALL]
        self.table = AtomTable.build(inputs, features, list(self._computed.values()))
        self._point = self._point_values()
        self._boot = self._bootstrap(n_boot, random_state, progress)

    # ---- computation -----------------------------------------------------------------

    def _point_values(self) -> dict[str, dict[str, np.ndarray]]:
        counts = self.table.counts[None, :]
        return {
            attribute: {
                name: values[0] for name, values in self.table.evaluate(attribute, counts).items()
            }
            for attribute in self.table.group_names
        }

    def _bootstrap(
        self, n_boot: int, seed: int | None, progress: Progress | None
    ) -> dict[str, dict[str, np.ndarray]] | None:
        if n_boot == 0:
            return None
        table = self.table
        rng = np.random.default_rng(seed)
        chunk = chunk_size(len(table))
        out = {
            attribute: {name: np.empty((n_boot, len(groups))) for name in self._computed}
            for attribute, groups in table.group_names.items()
        }
        blocks: Iterable[np.ndarray] = resample_counts(
            table.counts, table.atom_of_row, n_boot=n_boot, rng=rng, chunk=chunk
        )
        if progress is not None:
            blocks = progress(blocks, -(-n_boot // chunk))
        start = 0
        for counts in blocks:
            stop = start + len(counts)
            for attribute in table.group_names:
                for name, values in table.evaluate(attribute, counts).items():
                    out[attribute][name][start:stop] = values
            start = stop
        return out

    # ---- views ---------------------------------------------------------------------

    def group_names(self, attribute: str) -> list[str]:
        """Groups of ``attribute`` in report order (``unknown`` last)."""
        return self.table.group_names[attribute]

    def group_sizes(self, attribute: str) -> np.ndarray:
        """Examples per group of ``attribute``."""
        table = self.table
        return np.array([table.counts[m].sum() for m in table.members[attribute]]).astype(np.int64)

    def large_groups(self, attribute: str) -> np.ndarray:
        """Mask of the groups of ``attribute`` with at least ``min_group_size`` examples."""
        return self.group_sizes(attribute) >= self.min_group_size

    def values(self, attribute: str, metric: str) -> np.ndarray:
        """Point values of ``metric`` per group of ``attribute`` (NaN where undefined)."""
        return self._point[attribute][metric]

    def bootstrap_values(self, attribute: str, metric: str) -> np.ndarray | None:
        """Bootstrap values ``(n_boot, groups)``, or ``None`` without bootstrap."""
        return None if self._boot is None else self._boot[attribute][metric]

    def _estimate(self, attribute: str, metric: str, group: int) -> Estimate:
        value = float(self._point[attribute][metric][group])
        note = None
        if np.isnan(value):
            note = UNDEFINED.get(metric, "no examples")
        boot = self.bootstrap_values(attribute, metric)
        estimate = Estimate(value, None, 0, note)
        if boot is not None:
            estimate = _with_ci(value, boot[:, group], self.confidence, note)
        return replace(estimate, trials=self._trials(attribute, metric, group))

    def _trials(self, attribute: str, metric: str, group: int) -> int | None:
        """The examples a proportion is a share of in one group (``None``: not a proportion)."""
        computed = self._computed[metric]
        if not (computed.proportion and isinstance(computed, AdditiveMetric)):
            return None
        stats = self.table.group_stats(computed, attribute, group)
        return round(float(computed.successes_trials(stats)[1]))

    @property
    def overall(self) -> dict[str, Estimate]:
        """Every requested metric over all examples."""
        return {m.name: self._estimate(OVERALL, m.name, 0) for m in self.metrics}

    @property
    def by_group(self) -> dict[str, dict[str, GroupResult]]:
        """Per attribute and group: size, small flag and every requested metric."""
        out: dict[str, dict[str, GroupResult]] = {}
        for attribute in self.attributes:
            sizes = self.group_sizes(attribute)
            out[attribute] = {
                group: GroupResult(
                    n=int(sizes[g]),
                    small=bool(sizes[g] < self.min_group_size),
                    metrics={m.name: self._estimate(attribute, m.name, g) for m in self.metrics},
                )
                for g, group in enumerate(self.group_names(attribute))
            }
        return out

    def disparity(self, attribute: str, metric: str) -> Disparity:
        """Difference and ratio between the non-small groups of ``attribute`` on ``metric``."""
        large = self.large_groups(attribute)
        names = [n for n, keep in zip(self.group_names(attribute), large, strict=True) if keep]
        point = self._point[attribute][metric][large]
        difference, ratio = (float(x) for x in _spread(point))
        worst = best = None
        if np.isfinite(point).any():
            higher_is_better = self._computed[metric].higher_is_better
            low, high = names[int(np.nanargmin(point))], names[int(np.nanargmax(point))]
            worst, best = (low, high) if higher_is_better else (high, low)
        difference_ci = ratio_ci = None
        boot = self.bootstrap_values(attribute, metric)
        if boot is not None:
            boot_difference, boot_ratio = _spread(boot[:, large])
            difference_ci = _with_ci(difference, boot_difference, self.confidence, None).ci
            ratio_ci = _with_ci(ratio, boot_ratio, self.confidence, None).ci
        return Disparity(difference, ratio, worst, best, difference_ci, ratio_ci, int(large.sum()))

    def equalized_odds_difference(self, attribute: str) -> Estimate | None:
        """Larger of the TPR and FPR differences between non-small groups (binary labels).

        Returns:
            The estimate, or ``None`` when there is no positive label.
        """
        if self.positive_label is None:
            return None
        large = self.large_groups(attribute)
        tpr = self._point[attribute][TruePositiveRate.name][large]
        fpr = self._point[attribute][FalsePositiveRate.name][large]
        value = float(np.fmax(_spread(tpr)[0], _spread(fpr)[0]))
        note = None if np.isfinite(value) else "no two rates to compare among non-small groups"
        if self._boot is None:
            return Estimate(value, None, 0, note)
        boot_tpr = self._boot[attribute][TruePositiveRate.name][:, large]
        boot_fpr = self._boot[attribute][FalsePositiveRate.name][:, large]
        boot = np.fmax(_spread(boot_tpr)[0], _spread(boot_fpr)[0])
        return _with_ci(value, boot, self.confidence, note)

    def metric(self, name: str) -> Metric:
        """The metric object computed under ``name``."""
        return self._computed[name]


def _with_ci(value: float, boot: np.ndarray, confidence: float, note: str | None) -> Estimate:
    lower, upper = percentile_ci(boot, confidence)
    undefined = int(np.isnan(boot).sum())
    ci = None if np.isnan(lower) else (float(lower), float(upper))
    return Estimate(value, ci, undefined, note)
