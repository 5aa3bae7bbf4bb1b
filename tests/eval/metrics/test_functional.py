"""Every metric definition against scikit-learn (or a direct formula) on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from eval.metrics.functional import (
    ECE_BINS,
    NEEDS_POSITIVE_LABEL,
    NEEDS_SCORES,
    SCORE_OUT_OF_RANGE,
    AdditiveMetric,
    MetricInputs,
    normalize_answer,
)
from eval.registry import METRICS

SEEDS = [0, 1, 2]


def _binary(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.choice(["yes", "no", "maybe"], n, p=[0.4, 0.5, 0.1]).astype(object)
    pred = np.where(rng.random(n) < 0.7, ref, rng.choice(["yes", "no", "maybe"], n)).astype(object)
    scores = np.round(rng.random(n), 2)  # rounded: ties happen, as with real model scores
    return ref, pred, scores


def _compute(name: str, ref: np.ndarray, pred: np.ndarray, scores: np.ndarray | None) -> float:
    inputs = MetricInputs(predictions=pred, references=ref, scores=scores, positive_label="yes")
    return METRICS.get(name)().compute(inputs)


@pytest.mark.parametrize("seed", SEEDS)
def test_label_metrics_equal_sklearn(seed: int) -> None:
    ref, pred, _ = _binary(seed)
    y, p = ref == "yes", pred == "yes"
    expected = {
        "accuracy": skm.accuracy_score(ref, pred),
        "true_positive_rate": skm.recall_score(y, p),
        "precision": skm.precision_score(y, p),
        "f1": skm.f1_score(y, p),
        "specificity": skm.recall_score(~y, ~p),
        "false_positive_rate": 1 - skm.recall_score(~y, ~p),
        "macro_f1": skm.f1_score(ref, pred, average="macro"),
    }
    for name, value in expected.items():
        assert _compute(name, ref, pred, None) == pytest.approx(value, rel=1e-12, abs=1e-15), name


@pytest.mark.parametrize("seed", SEEDS)
def test_score_metrics_equal_sklearn(seed: int) -> None:
    ref, pred, scores = _binary(seed)
    y = (ref == "yes").astype(int)
    assert _compute("auroc", ref, pred, scores) == pytest.approx(
        skm.roc_auc_score(y, scores), rel=1e-12
    )
    prob_true, prob_pred = calibration_curve(y, scores, n_bins=ECE_BINS, strategy="uniform")
    edges = np.linspace(0, 1, ECE_BINS + 1)
    sizes = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=ECE_BINS)
    sizes = sizes[sizes > 0]
    ece = float(np.sum(sizes * np.abs(prob_true - prob_pred)) / len(y))
    assert _compute("expected_calibration_error", ref, pred, scores) == pytest.approx(
        ece, rel=1e-12
    )


def test_macro_f1_counts_classes_seen_only_in_predictions() -> None:
    ref = np.array(["a", "a", "b"], dtype=object)
    pred = np.array(["a", "c", "b"], dtype=object)
    assert _compute("macro_f1", ref, pred, None) == pytest.approx(
        skm.f1_score(ref, pred, average="macro")
    )


def test_exact_match_ignores_case_and_spacing_only() -> None:
    ref = np.array(["Atrial  fibrillation", "Sinus rhythm", "yes"], dtype=object)
    pred = np.array(["atrial fibrillation ", "sinus rhythm.", "yes"], dtype=object)
    normalized = [normalize_answer(x) for x in pred], [normalize_answer(x) for x in ref]
    assert _compute("exact_match", ref, pred, None) == pytest.approx(
        skm.accuracy_score(normalized[1], normalized[0])
    )
    assert _compute("exact_match", ref, pred, None) == pytest.approx(2 / 3)


def test_undefined_rates_are_nan_not_zero() -> None:
    only_negative = np.array(["no", "no"], dtype=object)
    assert np.isnan(_compute("true_positive_rate", only_negative, only_negative, None))
    assert np.isnan(_compute("precision", only_negative, only_negative, None))
    assert np.isnan(_compute("auroc", only_negative, only_negative, np.array([0.1, 0.2])))
    assert _compute("specificity", only_negative, only_negative, None) == 1.0


def test_missing_positive_label_or_scores_are_refused() -> None:
    ref = np.array(["yes", "no"], dtype=object)
    no_label = MetricInputs(predictions=ref, references=ref)
    with pytest.raises(ValueError, match="needs a positive label"):
        METRICS.get("f1")().compute(no_label)
    assert "needs a positive label" in NEEDS_POSITIVE_LABEL
    no_scores = MetricInputs(predictions=ref, references=ref, positive_label="yes")
    with pytest.raises(ValueError, match=NEEDS_SCORES.format(name="auroc")):
        METRICS.get("auroc")().compute(no_scores)
    bad_scores = MetricInputs(
        predictions=ref, references=ref, scores=np.array([0.5, 1.5]), positive_label="yes"
    )
    with pytest.raises(ValueError, match=r"needs scores in \[0, 1\]"):
        METRICS.get("expected_calibration_error")().compute(bad_scores)
    assert "[0, 1]" in SCORE_OUT_OF_RANGE


def test_from_stats_is_vectorised_over_leading_axes() -> None:
    ref, pred, _ = _binary(0, n=50)
    metric = METRICS.get("f1")()
    assert isinstance(metric, AdditiveMetric)
    inputs = MetricInputs(predictions=pred, references=ref, positive_label="yes")
    stats = metric.row_stats(inputs)
    weights = np.random.default_rng(0).integers(0, 3, size=(7, 5, len(ref))).astype(float)
    values = metric.from_stats(weights @ stats)
    assert values.shape == (7, 5)
    for i, j in [(0, 0), (3, 4), (6, 2)]:
        rows = np.repeat(np.arange(len(ref)), weights[i, j].astype(int))
        y, p = ref[rows] == "yes", pred[rows] == "yes"
        assert values[i, j] == pytest.approx(skm.f1_score(y, p))
