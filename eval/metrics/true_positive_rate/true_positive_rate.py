"""`evaluate` module `true_positive_rate`: sensitivity (recall) of pos_label.

Load it by path, offline: ``evaluate.load("eval/metrics/true_positive_rate")``. The value
comes from :mod:`eval.metrics.functional`, the definition the subgroup engine uses.
"""

from __future__ import annotations

from typing import Any

import evaluate

from eval.metrics.hf import compute_metric, metric_info

NAME = "true_positive_rate"


class TruePositiveRate(evaluate.Metric):
    """Sensitivity (recall) of pos_label."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(NAME)

    def _compute(
        self,
        predictions: list[Any],
        references: list[Any],
        pos_label: Any = None,
    ) -> dict[str, float]:
        return compute_metric(
            NAME, predictions=predictions, references=references, pos_label=pos_label
        )
