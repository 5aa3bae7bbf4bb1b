"""`evaluate` module `expected_calibration_error`: calibration of prediction_scores, 10 bins.

Load it by path, offline: ``evaluate.load("eval/metrics/expected_calibration_error")``. The value
comes from :mod:`eval.metrics.functional`, the definition the subgroup engine uses.
"""

from __future__ import annotations

from typing import Any

import evaluate

from eval.metrics.hf import compute_metric, metric_info

NAME = "expected_calibration_error"


class ExpectedCalibrationError(evaluate.Metric):
    """Expected calibration error of prediction_scores (10 bins)."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(NAME)

    def _compute(
        self,
        references: list[Any],
        prediction_scores: list[float],
        pos_label: Any = None,
    ) -> dict[str, float]:
        return compute_metric(
            NAME, references=references, prediction_scores=prediction_scores, pos_label=pos_label
        )
