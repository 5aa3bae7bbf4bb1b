"""`evaluate` module `exact_match`: exact match of free text (case and spacing ignored).

Load it by path, offline: ``evaluate.load("eval/metrics/exact_match")``. The value
comes from :mod:`eval.metrics.functional`, the definition the subgroup engine uses.
"""

from __future__ import annotations

from typing import Any

import evaluate

from eval.metrics.hf import compute_metric, metric_info

NAME = "exact_match"


class ExactMatch(evaluate.Metric):
    """Free-text exact match after lower-casing and collapsing whitespace."""

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
