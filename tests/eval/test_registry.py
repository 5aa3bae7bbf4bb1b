"""The metric registry: lazy entries, "did you mean", duplicates refused."""

from __future__ import annotations

import pytest

from eval.metrics.functional import Metric
from eval.registry import METRICS, resolve_metrics
from llm.errors import BadInputError


def test_every_entry_resolves_to_a_metric_named_like_its_entry() -> None:
    for name in METRICS.names():
        metric = METRICS.get(name)()
        assert isinstance(metric, Metric) and metric.name == name and metric.description


def test_unknown_and_repeated_names_are_user_errors() -> None:
    with pytest.raises(BadInputError, match="did you mean 'true_positive_rate'"):
        resolve_metrics(["true_positiv_rate"])
    with pytest.raises(BadInputError, match="listed twice"):
        resolve_metrics(["f1", "f1"])
    with pytest.raises(ValueError, match="already registered"):
        METRICS.register("accuracy", "eval.metrics.functional:Accuracy")
