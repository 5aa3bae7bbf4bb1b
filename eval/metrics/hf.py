"""Glue between the local ``evaluate`` modules and :mod:`eval.metrics.functional`.

Each ``eval/metrics/<name>/<name>.py`` is a small ``evaluate.Metric`` subclass
whose ``_info`` and ``_compute`` call :func:`metric_info` and
:func:`compute_metric` here, so the value always comes from the one definition
the subgroup engine also uses. Load a module by its path; nothing is fetched
from the Hub::

    import evaluate
    accuracy = evaluate.load("eval/metrics/accuracy")
    accuracy.compute(predictions=["yes", "no"], references=["yes", "yes"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets
import evaluate
import numpy as np

from eval.metrics.functional import MetricInputs
from eval.metrics.labels import canonical_label
from eval.registry import METRICS

METRICS_DIR = Path(__file__).parent

_LABEL_TYPES = ("string", "int64", "float64")


def module_path(name: str) -> Path:
    """Folder of the local ``evaluate`` module of metric ``name``.

    Raises:
        BadInputError: unknown metric (with "did you mean").
    """
    METRICS.check(name)
    return METRICS_DIR / name


def metric_info(name: str) -> evaluate.MetricInfo:
    """The ``MetricInfo`` of metric ``name``: its description and input features.

    Label metrics take ``predictions`` and ``references`` (strings or numbers);
    score metrics take ``prediction_scores`` (floats) and ``references``.
    """
    metric = METRICS.get(name)()
    if metric.needs_scores:
        features = [
            datasets.Features(
                {"prediction_scores": datasets.Value("float64"), "references": datasets.Value(t)}
            )
            for t in _LABEL_TYPES
        ]
    else:
        features = [
            datasets.Features({"predictions": datasets.Value(t), "references": datasets.Value(t)})
            for t in _LABEL_TYPES
        ]
    return evaluate.MetricInfo(
        description=metric.description,
        citation="",
        inputs_description=(
            "references: labels or texts; "
            + ("prediction_scores: probability/score of pos_label; " if metric.needs_scores else "")
            + ("predictions: labels or texts; " if not metric.needs_scores else "")
            + ("pos_label: the positive label (required)." if metric.needs_positive_label else "")
        ),
        features=features,
    )


def _labels(values: Sequence[object]) -> np.ndarray:
    return np.array([canonical_label(v) for v in values], dtype=object)


def compute_metric(
    name: str,
    *,
    references: Sequence[object],
    predictions: Sequence[object] | None = None,
    prediction_scores: Sequence[float] | None = None,
    pos_label: object = None,
) -> dict[str, float]:
    """Compute metric ``name`` once over all examples.

    Labels are compared as canonical strings (``1``, ``1.0`` and ``"1"`` agree).

    Returns:
        ``{name: value}``; NaN when undefined (a rate with no denominator).

    Raises:
        ValueError: a positive label or scores the metric needs are missing.
    """
    metric = METRICS.get(name)()
    refs = _labels(references)
    preds = _labels(predictions) if predictions is not None else refs
    scores = None if prediction_scores is None else np.asarray(prediction_scores, dtype=np.float64)
    inputs = MetricInputs(
        predictions=preds,
        references=refs,
        scores=scores,
        positive_label=None if pos_label is None else canonical_label(pos_label),
    )
    return {name: metric.compute(inputs)}
