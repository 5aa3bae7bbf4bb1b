"""SubgroupFrame against fairlearn's MetricFrame, and its small/unknown/undefined handling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    equalized_odds_difference,
    false_positive_rate,
    true_positive_rate,
)
from sklearn import metrics as skm

from eval.metrics.functional import MetricInputs
from eval.registry import resolve_metrics
from eval.subgroups.frame import BAD_CONFIDENCE, DUPLICATE_METRIC, SubgroupFrame

METRIC_NAMES = ["accuracy", "true_positive_rate", "false_positive_rate", "precision", "f1"]
FAIRLEARN = {
    "accuracy": skm.accuracy_score,
    "true_positive_rate": lambda y, p: true_positive_rate(y, p, pos_label="yes"),
    "false_positive_rate": lambda y, p: false_positive_rate(y, p, pos_label="yes"),
    "precision": lambda y, p: skm.precision_score(y, p, pos_label="yes"),
    "f1": lambda y, p: skm.f1_score(y, p, pos_label="yes"),
}


def _data(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M", "X"], n, p=[0.5, 0.46, 0.04])
    race = rng.choice(["A", "B", "C", "D", "unknown"], n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    ref = rng.choice(["yes", "no"], n)
    p_correct = np.where(race == "B", 0.75, 0.88)
    pred = np.where(rng.random(n) < p_correct, ref, np.where(ref == "yes", "no", "yes"))
    return {"sex": sex, "race": race, "ref": ref, "pred": pred}


def _frame(data: dict[str, np.ndarray], min_group_size: int, n_boot: int = 0) -> SubgroupFrame:
    inputs = MetricInputs(
        predictions=data["pred"].astype(object),
        references=data["ref"].astype(object),
        positive_label="yes",
    )
    inter = np.array([f"{s}*{r}" for s, r in zip(data["sex"], data["race"], strict=True)])
    return SubgroupFrame(
        metrics=resolve_metrics(METRIC_NAMES),
        inputs=inputs,
        sensitive_features={
            "sex": data["sex"].astype(object),
            "race": data["race"].astype(object),
            "sex*race": inter.astype(object),
        },
        min_group_size=min_group_size,
        n_boot=n_boot,
        random_state=0,
    )


def _fairlearn(
    data: dict[str, np.ndarray], features: pd.DataFrame, keep: np.ndarray
) -> MetricFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MetricFrame(
            metrics=FAIRLEARN,
            y_true=data["ref"][keep],
            y_pred=data["pred"][keep],
            sensitive_features=features[keep],
        )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_by_group_difference_ratio_equal_fairlearn(seed: int) -> None:
    data = _data(seed, n=1500)
    frame = _frame(data, min_group_size=30)
    by_group = frame.by_group
    for attribute, columns in [("sex", ["sex"]), ("race", ["race"]), ("sex*race", ["sex", "race"])]:
        features = pd.DataFrame({c: data[c] for c in columns})
        names = ["*".join(row) for row in features.itertuples(index=False)]
        sizes = pd.Series(names).value_counts()
        large = {g for g, n in sizes.items() if n >= 30}
        keep = np.array([name in large for name in names])
        assert {g for g, r in by_group[attribute].items() if not r.small} == large
        mf = _fairlearn(data, features, keep)
        for metric in METRIC_NAMES:
            expected = mf.by_group[metric].dropna()
            for key, value in expected.items():
                group = "*".join(key) if isinstance(key, tuple) else key
                assert by_group[attribute][group].metrics[metric].value == pytest.approx(
                    value, rel=1e-12, abs=1e-15
                ), (attribute, group, metric)
            disparity = frame.disparity(attribute, metric)
            assert disparity.difference == pytest.approx(
                mf.difference(method="between_groups")[metric], rel=1e-12, abs=1e-15
            )
            assert disparity.ratio == pytest.approx(
                mf.ratio(method="between_groups")[metric], rel=1e-12, abs=1e-15
            )
            assert disparity.groups_compared == len(large)
        eod = equalized_odds_difference(
            (data["ref"][keep] == "yes").astype(int),
            (data["pred"][keep] == "yes").astype(int),
            sensitive_features=features[keep],
        )
        estimate = frame.equalized_odds_difference(attribute)
        assert estimate is not None
        assert estimate.value == pytest.approx(eod, rel=1e-12, abs=1e-15)


def test_overall_equals_whole_data_and_small_groups_keep_their_values() -> None:
    data = _data(5, n=600)
    frame = _frame(data, min_group_size=30)
    assert frame.overall["accuracy"].value == pytest.approx(
        skm.accuracy_score(data["ref"], data["pred"])
    )
    small = frame.by_group["sex"]["X"]
    assert small.small and small.n == int((data["sex"] == "X").sum()) and small.n < 30
    rows = data["sex"] == "X"
    assert small.metrics["accuracy"].value == pytest.approx(
        skm.accuracy_score(data["ref"][rows], data["pred"][rows])
    )


def test_worst_and_best_follow_the_metric_direction() -> None:
    data = _data(0, n=3000)
    frame = _frame(data, min_group_size=30)
    values = dict(zip(frame.group_names("race"), frame.values("race", "accuracy"), strict=True))
    accuracy = frame.disparity("race", "accuracy")
    assert accuracy.worst_group == min(values, key=values.__getitem__) == "B"
    assert accuracy.best_group == max(values, key=values.__getitem__)
    fpr_values = dict(
        zip(frame.group_names("race"), frame.values("race", "false_positive_rate"), strict=True)
    )
    fpr = frame.disparity("race", "false_positive_rate")
    assert fpr.worst_group == max(fpr_values, key=fpr_values.__getitem__)


def test_unknown_group_is_kept_and_last() -> None:
    data = _data(1, n=2000)
    frame = _frame(data, min_group_size=30)
    assert frame.group_names("race")[-1] == "unknown"
    assert frame.by_group["race"]["unknown"].n == int((data["race"] == "unknown").sum())


def test_undefined_metric_is_nan_with_a_note() -> None:
    data = _data(2, n=400)
    data["ref"][data["sex"] == "X"] = "no"  # group X has no positive references
    frame = _frame(data, min_group_size=0, n_boot=50)
    estimate = frame.by_group["sex"]["X"].metrics["true_positive_rate"]
    assert np.isnan(estimate.value)
    assert estimate.ci is None and estimate.note == "no reference has the positive label"
    # the undefined group drops out of the comparison like fairlearn's NaN groups
    assert frame.disparity("sex", "true_positive_rate").worst_group in {"F", "M"}


def test_all_groups_small_gives_undefined_disparity() -> None:
    data = _data(3, n=100)
    frame = _frame(data, min_group_size=1000, n_boot=20)
    disparity = frame.disparity("sex", "accuracy")
    assert np.isnan(disparity.difference) and disparity.worst_group is None
    assert disparity.groups_compared == 0 and disparity.difference_ci is None


def test_bad_arguments_are_refused_with_constant_messages() -> None:
    data = _data(0, n=50)
    inputs = MetricInputs(predictions=data["pred"], references=data["ref"], positive_label="yes")
    with pytest.raises(ValueError, match=BAD_CONFIDENCE.format(value=1.5).replace(".", r"\.")):
        SubgroupFrame(
            metrics=resolve_metrics(["accuracy"]),
            inputs=inputs,
            sensitive_features={},
            confidence=1.5,
        )
    metric = resolve_metrics(["accuracy"])[0]
    with pytest.raises(ValueError, match=DUPLICATE_METRIC.format(name="accuracy")):
        SubgroupFrame(metrics=[metric, metric], inputs=inputs, sensitive_features={})
