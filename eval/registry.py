"""Names of the evaluation metrics, resolved lazily.

The registry class is the project's one small registry
(:class:`llm.registry.Registry`, shaped like lm-eval's): entries are
``"module:Name"`` strings imported on first use, a name registered twice is a
programming error, an unknown name is the user's error (exit 2) answered with
"did you mean …".

Each name here is also a local ``evaluate`` module, ``eval/metrics/<name>/<name>.py``,
that wraps the same definition (see :mod:`eval.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

from eval.metrics.functional import Metric
from llm.errors import BadInputError
from llm.registry import Registry

METRICS: Registry[type[Metric]] = Registry(
    "metric",
    {
        "accuracy": "eval.metrics.functional:Accuracy",
        "true_positive_rate": "eval.metrics.functional:TruePositiveRate",
        "false_positive_rate": "eval.metrics.functional:FalsePositiveRate",
        "specificity": "eval.metrics.functional:Specificity",
        "precision": "eval.metrics.functional:Precision",
        "f1": "eval.metrics.functional:F1",
        "macro_f1": "eval.metrics.functional:MacroF1",
        "exact_match": "eval.metrics.functional:ExactMatch",
        "rouge_l": "eval.metrics.functional:RougeL",
        "auroc": "eval.metrics.functional:AUROC",
        "expected_calibration_error": "eval.metrics.functional:ExpectedCalibrationError",
    },
)


def resolve_metrics(names: Sequence[str]) -> list[Metric]:
    """Metric objects for ``names``, in order.

    Raises:
        BadInputError: an unknown name (with "did you mean"), a name given twice,
            or no names at all.
    """
    if not names:
        raise BadInputError("--metrics: give at least one metric")
    seen: set[str] = set()
    out: list[Metric] = []
    for name in names:
        if name in seen:
            raise BadInputError(f"--metrics: {name!r} is listed twice")
        seen.add(name)
        out.append(METRICS.get(name)())
    return out
