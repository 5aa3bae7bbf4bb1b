"""`evaluate` module `auroc`: area under the ROC curve of prediction_scores against pos_label.

Load it by path, offline: ``evaluate.load("eval/metrics/auroc")``. The value
comes from :mod:`eval.metrics.functional`, the definition the subgroup engine uses.
"""

from __future__ import annotations

from typing import Any

import evaluate

from eval.metrics.hf import compute_metric, metric_info

NAME = "auroc"


class AUROC(evaluate.Metric):
    """Area under the ROC curve of prediction_scores against pos_label."""

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
