"""The one definition of every metric, as pure numpy over sufficient statistics.

Two shapes of metric live here:

* :class:`AdditiveMetric`: the value is a function of per-example statistics
  summed over the examples (confusion-matrix cells, a correct flag, a per-example
  ROUGE-L score, calibration-bin residuals). ``row_stats`` gives the ``(n, k)``
  statistics, ``from_stats`` turns summed statistics of any leading shape
  ``(..., k)`` into values ``(...)``. The subgroup engine sums statistics with
  bootstrap counts for all resamples at once; the ``evaluate`` modules sum them
  with a count of one per example. Same function, same numbers.
* :class:`RankMetric` (AUROC): the value depends on how examples rank by score.
  ``from_ranked`` takes positive and negative counts per score level (ascending)
  of any leading shape.

Undefined values (a rate with an empty denominator) are NaN, never 0: a group
with no positive references has no true positive rate.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from eval.metrics.text import rouge_l_f1

FloatArray = np.ndarray
# ten equal-width bins on [0, 1], the bins sklearn's calibration_curve uses
ECE_BINS = 10

NEEDS_POSITIVE_LABEL = "metric {name!r} needs a positive label (--positive-label)"
NEEDS_SCORES = "metric {name!r} needs a score on every example"
SCORE_OUT_OF_RANGE = "metric {name!r} needs scores in [0, 1] (probability of the positive label)"


@dataclass(frozen=True)
class MetricInputs:
    """The examples a metric sees, as parallel arrays.

    Args:
        predictions: predicted labels or texts (object array of str).
        references: reference labels or texts (object array of str).
        scores: model score per example (probability or logit of the positive
            label), or ``None`` when the predictions carry none.
        positive_label: the label counted as positive by binary metrics.
    """

    predictions: np.ndarray
    references: np.ndarray
    scores: np.ndarray | None = None
    positive_label: str | None = None

    def __len__(self) -> int:
        return len(self.references)

    def take(self, rows: np.ndarray) -> MetricInputs:
        """The inputs restricted to ``rows`` (indices), in that order."""
        return MetricInputs(
            predictions=self.predictions[rows],
            references=self.references[rows],
            scores=None if self.scores is None else self.scores[rows],
            positive_label=self.positive_label,
        )


def safe_divide(num: FloatArray, den: FloatArray) -> FloatArray:
    """``num / den`` with NaN where the denominator is zero (an undefined rate)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
    return np.where(np.asarray(den) == 0, np.nan, out)


class Metric:
    """What every metric declares about itself.

    Attributes:
        name: registry name (``true_positive_rate``).
        description: one line for ``--help`` and the docs.
        higher_is_better: decides which group is the worst.
        needs_positive_label: binary metrics (one-vs-rest with the positive label).
        needs_scores: the metric reads ``score``.
        proportion: the value is successes / trials (a two-proportion z-test applies).
    """

    name: str = ""
    description: str = ""
    higher_is_better: bool = True
    needs_positive_label: bool = False
    needs_scores: bool = False
    scores_in_unit_interval: bool = False
    proportion: bool = False

    def check_inputs(self, inputs: MetricInputs) -> None:
        """Raise ``ValueError`` when ``inputs`` lack what this metric needs."""
        if self.needs_positive_label and inputs.positive_label is None:
            raise ValueError(NEEDS_POSITIVE_LABEL.format(name=self.name))
        if self.needs_scores:
            if inputs.scores is None or np.isnan(inputs.scores).any():
                raise ValueError(NEEDS_SCORES.format(name=self.name))
            if self.scores_in_unit_interval and (
                (inputs.scores < 0).any() or (inputs.scores > 1).any()
            ):
                raise ValueError(SCORE_OUT_OF_RANGE.format(name=self.name))

    def compute(self, inputs: MetricInputs) -> float:
        """The metric over all of ``inputs`` (each example counted once).

        Raises:
            ValueError: the inputs lack a positive label or scores this metric needs.
        """
        self.check_inputs(inputs)
        if isinstance(self, AdditiveMetric):
            return float(self.from_stats(self.row_stats(inputs).sum(axis=0)))
        if isinstance(self, RankMetric):
            to_positive, to_negative, starts = rank_maps(inputs)
            ones = np.ones((1, len(inputs)))
            return float(self.from_ranked(ones @ to_positive, ones @ to_negative, starts)[0, 0])
        raise TypeError(f"unknown metric shape {type(self).__name__}")


class AdditiveMetric(Metric, ABC):
    """A metric computed from per-example statistics summed over examples."""

    @abstractmethod
    def row_stats(self, inputs: MetricInputs) -> FloatArray:
        """Per-example statistics, shape ``(n, k)``."""

    @abstractmethod
    def from_stats(self, stats: FloatArray) -> FloatArray:
        """Values from summed statistics: ``(..., k)`` to ``(...)``."""

    def successes_trials(self, stats: FloatArray) -> tuple[FloatArray, FloatArray]:
        """For proportion metrics: successes and trials from summed statistics."""
        raise NotImplementedError(f"{self.name} is not a proportion")


class RankMetric(Metric, ABC):
    """A metric computed from the ranking of examples by score."""

    needs_scores = True

    @abstractmethod
    def from_ranked(
        self, positives: FloatArray, negatives: FloatArray, starts: np.ndarray
    ) -> FloatArray:
        """Values per segment from counts per score level.

        Args:
            positives / negatives: counts per score level, shape ``(b, L)``;
                the levels of one segment (group) are contiguous and ascending.
            starts: first level of each segment, shape ``(G,)``.

        Returns:
            Values, shape ``(b, G)``.
        """


def is_positive(labels: np.ndarray, positive_label: str | None) -> np.ndarray:
    """Boolean mask of ``labels == positive_label`` (one-vs-rest)."""
    if positive_label is None:
        raise ValueError("a positive label is required")
    return np.asarray(labels == positive_label, dtype=bool)


def confusion_stats(inputs: MetricInputs) -> FloatArray:
    """Per-example one-hot confusion cells ``[tp, fp, fn, tn]``, shape ``(n, 4)``."""
    ref = is_positive(inputs.references, inputs.positive_label)
    pred = is_positive(inputs.predictions, inputs.positive_label)
    return np.stack([ref & pred, ~ref & pred, ref & ~pred, ~ref & ~pred], axis=1).astype(np.float64)


class ConfusionMetric(AdditiveMetric):
    """A binary metric of the confusion cells ``tp, fp, fn, tn`` (stats columns 0..3)."""

    needs_positive_label = True

    def row_stats(self, inputs: MetricInputs) -> FloatArray:
        return confusion_stats(inputs)

    def from_stats(self, stats: FloatArray) -> FloatArray:
        num, den = self.successes_trials(stats)
        return safe_divide(num, den)


class TruePositiveRate(ConfusionMetric):
    name = "true_positive_rate"
    description = "Sensitivity (recall): tp / (tp + fn); NaN when the group has no positives."
    proportion = True

    def successes_trials(self, stats: FloatArray) -> tuple[FloatArray, FloatArray]:
        return stats[..., 0], stats[..., 0] + stats[..., 2]


class FalsePositiveRate(ConfusionMetric):
    name = "false_positive_rate"
    description = "Fall-out: fp / (fp + tn); NaN when the group has no negatives. Lower is better."
    higher_is_better = False
    proportion = True

    def successes_trials(self, stats: FloatArray) -> tuple[FloatArray, FloatArray]:
        return stats[..., 1], stats[..., 1] + stats[..., 3]


class Specificity(ConfusionMetric):
    name = "specificity"
    description = "True negative rate: tn / (tn + fp); NaN when the group has no negatives."
    proportion = True

    def successes_trials(self, stats: FloatArray) -> tuple[FloatArray, FloatArray]:
        return stats[..., 3], stats[..., 3] + stats[..., 1]


class Precision(ConfusionMetric):
    name = "precision"
    description = "Positive predictive value: tp / (tp + fp); NaN with no positive predictions."
    proportion = True

    def successes_trials(self, stats: FloatArray) -> tuple[FloatArray, FloatArray]:
        return stats[..., 0], stats[..., 0] + stats[..., 1]


class F1(ConfusionMetric):
    name = "f1"
    description = "Binary F1 of the positive label: 2tp / (2tp + fp + fn)."

    def from_stats(self, stats: FloatArray) -> FloatArray:
        tp, fp, fn = stats[..., 0], stats[..., 1], stats[..., 2]
        return safe_divide(2 * tp, 2 * tp + fp + fn)


class Accuracy(AdditiveMetric):
    name = "accuracy"
    description = "Share of examples whose predicted label equals the reference label."
    proportion = True

    def row_stats(self, inputs: MetricInputs) -> FloatArray:
        correct = np.asarray(inputs.predictions == inputs.references, dtype=np.float64)
        return np.stack([correct, np.ones_like(correct)], axis=1)

    def from_stats(self, stats: FloatArray) -> FloatArray:
        return safe_divide(stats[..., 0], stats[..., 1])

    def successes_trials(self, stats: FloatArray) -> tuple[FloatArray, FloatArray]:
        return stats[..., 0], stats[..., 1]


_SPACE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Exact-match normalisation: lower case, whitespace runs collapsed, ends stripped."""
    return _SPACE.sub(" ", text.lower()).strip()


class ExactMatch(Accuracy):
    name = "exact_match"
    description = (
        "Share of free-text answers equal to the reference after lower-casing and "
        "collapsing whitespace."
    )

    def row_stats(self, inputs: MetricInputs) -> FloatArray:
        match = np.fromiter(
            (
                normalize_answer(p) == normalize_answer(r)
                for p, r in zip(inputs.predictions, inputs.references, strict=True)
            ),
            dtype=np.float64,
            count=len(inputs),
        )
        return np.stack([match, np.ones_like(match)], axis=1)


class RougeL(AdditiveMetric):
    name = "rouge_l"
    description = "Mean ROUGE-L F-measure (longest common subsequence of lower-cased word tokens)."

    def row_stats(self, inputs: MetricInputs) -> FloatArray:
        scores = np.fromiter(
            (rouge_l_f1(p, r) for p, r in zip(inputs.predictions, inputs.references, strict=True)),
            dtype=np.float64,
            count=len(inputs),
        )
        return np.stack([scores, np.ones_like(scores)], axis=1)

    def from_stats(self, stats: FloatArray) -> FloatArray:
        return safe_divide(stats[..., 0], stats[..., 1])


class MacroF1(AdditiveMetric):
    """Unweighted mean of per-class F1 over the classes present in the group.

    A class is present when it occurs as a reference or a prediction (sklearn's
    ``f1_score(average="macro")`` on the same examples). The statistics are
    ``[tp_c, fp_c, fn_c]`` per class of the whole data set, so resampled groups
    agree on which column is which class.
    """

    name = "macro_f1"
    description = "Multi-class F1, unweighted mean over the classes present in the group."

    def row_stats(self, inputs: MetricInputs) -> FloatArray:
        classes, codes = np.unique(
            np.concatenate([inputs.references, inputs.predictions]).astype(str),
            return_inverse=True,
        )
        n, c = len(inputs), len(classes)
        ref, pred = codes[:n], codes[n:]
        stats = np.zeros((n, 3, c))
        rows = np.arange(n)
        hit = ref == pred
        stats[rows[hit], 0, ref[hit]] = 1.0
        stats[rows[~hit], 1, pred[~hit]] = 1.0
        stats[rows[~hit], 2, ref[~hit]] = 1.0
        return stats.reshape(n, 3 * c)

    def from_stats(self, stats: FloatArray) -> FloatArray:
        c = stats.shape[-1] // 3
        per_class = stats.reshape(*stats.shape[:-1], 3, c)
        tp, fp, fn = per_class[..., 0, :], per_class[..., 1, :], per_class[..., 2, :]
        support = 2 * tp + fp + fn
        present = support > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(present, 2 * tp / np.where(present, support, 1.0), 0.0)
        return safe_divide(f1.sum(axis=-1), present.sum(axis=-1))


class ExpectedCalibrationError(AdditiveMetric):
    """Binary ECE over ten equal-width score bins.

    ``score`` is the predicted probability of the positive label. ECE is
    ``sum_b |sum_{i in b} (y_i - s_i)| / n``: the bin-size weighted gap between
    the observed positive rate and the mean score per bin (the bins of
    sklearn's ``calibration_curve(strategy="uniform")``).
    """

    name = "expected_calibration_error"
    description = "Calibration gap of the positive-label probability, 10 equal-width bins."
    higher_is_better = False
    needs_positive_label = True
    needs_scores = True
    scores_in_unit_interval = True

    def row_stats(self, inputs: MetricInputs) -> FloatArray:
        assert inputs.scores is not None  # check_inputs ran first
        scores = inputs.scores
        edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
        bins = np.searchsorted(edges[1:-1], scores)
        y = is_positive(inputs.references, inputs.positive_label).astype(np.float64)
        stats = np.zeros((len(inputs), ECE_BINS + 1))
        stats[np.arange(len(inputs)), bins] = y - scores
        stats[:, ECE_BINS] = 1.0
        return stats

    def from_stats(self, stats: FloatArray) -> FloatArray:
        return safe_divide(np.abs(stats[..., :ECE_BINS]).sum(axis=-1), stats[..., ECE_BINS])


class AUROC(RankMetric):
    """Area under the ROC curve as the Mann-Whitney statistic (ties count one half).

    Equal to sklearn's ``roc_auc_score``; NaN when a group lacks positives or
    negatives.
    """

    name = "auroc"
    description = "Area under the ROC curve of the score against the positive label."
    needs_positive_label = True

    def from_ranked(
        self, positives: FloatArray, negatives: FloatArray, starts: np.ndarray
    ) -> FloatArray:
        cumulative = np.cumsum(negatives, axis=-1)
        # negatives of the same segment with a strictly lower score than each level
        ends = np.append(starts[1:], negatives.shape[-1])
        segment_of_level = np.repeat(np.arange(len(starts)), ends - starts)
        before_segment = (cumulative - negatives)[..., starts]
        below = cumulative - negatives - before_segment[..., segment_of_level]
        wins = np.add.reduceat(positives * (below + 0.5 * negatives), starts, axis=-1)
        pairs = np.add.reduceat(positives, starts, axis=-1) * np.add.reduceat(
            negatives, starts, axis=-1
        )
        return safe_divide(wins, pairs)


RankMaps = tuple[sparse.csr_array, sparse.csr_array, np.ndarray]


def rank_maps(inputs: MetricInputs, segments: np.ndarray | None = None) -> RankMaps:
    """Sparse maps from examples to score levels, per segment (group).

    Args:
        inputs: examples with scores and a positive label.
        segments: each example's segment ``0..G-1`` (every one present), or
            ``None`` for one segment.

    Returns:
        ``(to_positive, to_negative, starts)``: two ``(n, L)`` maps (a count
        vector over the examples times either gives positive or negative counts
        per level; levels ascend by score within each segment) and the first
        level of each segment.
    """
    assert inputs.scores is not None
    n = len(inputs)
    segment = np.zeros(n) if segments is None else segments.astype(np.float64)
    levels, level_of = np.unique(
        np.column_stack([segment, inputs.scores]), axis=0, return_inverse=True
    )
    level_of = level_of.reshape(-1)
    starts = np.flatnonzero(np.r_[True, levels[1:, 0] != levels[:-1, 0]])
    positive = is_positive(inputs.references, inputs.positive_label)
    rows, shape = np.arange(n), (n, len(levels))
    to_positive = sparse.csr_array((positive.astype(np.float64), (rows, level_of)), shape=shape)
    to_negative = sparse.csr_array(((~positive).astype(np.float64), (rows, level_of)), shape=shape)
    return to_positive, to_negative, starts
