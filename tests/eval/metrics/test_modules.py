"""The local ``evaluate`` modules load by path offline and agree with scikit-learn."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn import metrics as skm

from eval.metrics.hf import METRICS_DIR, module_path
from eval.registry import METRICS
from llm.errors import BadInputError

pytestmark = pytest.mark.slow  # importing evaluate (datasets, pyarrow) takes several seconds


def test_every_registered_metric_has_a_module_folder() -> None:
    folders = {p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file()}
    assert folders == set(METRICS.names())
    with pytest.raises(BadInputError, match="did you mean 'accuracy'"):
        module_path("acuracy")


def test_modules_load_offline_and_match_sklearn() -> None:
    import evaluate

    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # tests/conftest.py forces offline hubs
    rng = np.random.default_rng(0)
    ref = rng.choice([0, 1], 300).tolist()
    pred = [r if rng.random() < 0.8 else 1 - r for r in ref]
    scores = np.round(rng.random(300), 3).tolist()
    expected = {
        "accuracy": skm.accuracy_score(ref, pred),
        "true_positive_rate": skm.recall_score(ref, pred),
        "false_positive_rate": 1 - skm.recall_score(ref, pred, pos_label=0),
        "specificity": skm.recall_score(ref, pred, pos_label=0),
        "precision": skm.precision_score(ref, pred),
        "f1": skm.f1_score(ref, pred),
        "macro_f1": skm.f1_score(ref, pred, average="macro"),
        "exact_match": skm.accuracy_score(ref, pred),
    }
    for name, value in expected.items():
        module = evaluate.load(str(module_path(name)))
        result = module.compute(predictions=pred, references=ref, pos_label=1)
        assert result[name] == pytest.approx(value, rel=1e-12), name
    auroc = evaluate.load(str(module_path("auroc")))
    result = auroc.compute(prediction_scores=scores, references=ref, pos_label=1)
    assert result["auroc"] == pytest.approx(skm.roc_auc_score(ref, scores), rel=1e-12)
    ece = evaluate.load(str(module_path("expected_calibration_error")))
    value = ece.compute(prediction_scores=scores, references=ref, pos_label=1)
    assert 0.0 <= value["expected_calibration_error"] <= 1.0
    rouge = evaluate.load(str(module_path("rouge_l")))
    text = rouge.compute(predictions=["the cat sat"], references=["the cat sat on the mat"])
    assert text["rouge_l"] == pytest.approx(2 / 3)
