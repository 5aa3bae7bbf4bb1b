"""`evaluate` module `macro_f1`: multi-class F1, unweighted mean over the classes present.

Load it by path, offline: ``evaluate.load("eval/metrics/macro_f1")``. The value
comes from :mod:`eval.metrics.functional`, the definition the subgroup engine uses.
"""

from __future__ import annotations

from typing import Any

import evaluate

from eval.metrics.hf import compute_metric, metric_info

NAME = "macro_f1"


class MacroF1(evaluate.Metric):
    """Multi-class F1, unweighted mean over the classes present."""

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
