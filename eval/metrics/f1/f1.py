"""`evaluate` module `f1`: binary F1 of pos_label.

Load it by path, offline: ``evaluate.load("eval/metrics/f1")``. The value
comes from :mod:`eval.metrics.functional`, the definition the subgroup engine uses.
"""

from __future__ import annotations

from typing import Any

import evaluate

from eval.metrics.hf import compute_metric, metric_info

NAME = "f1"


class F1(evaluate.Metric):
    """Binary F1 of pos_label."""

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
