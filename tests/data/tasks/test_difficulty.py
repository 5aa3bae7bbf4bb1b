"""Task difficulty predictors: Wilson intervals, majority, bag-of-words, model prediction files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from llm.data.tasks.difficulty import (
    Score,
    TaskExample,
    bag_of_words_predictions,
    majority_predictions,
    model_scores,
    read_model_predictions,
    read_split,
    score,
    wilson_interval,
)
from llm.errors import BadInputError


def example(i: int, text: str, answer: str, race: str = "White") -> TaskExample:
    return TaskExample(f"t:P{i}:E1", text, answer, {"race_ethnicity": race})


def test_wilson_interval() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    assert Score(3, 4).to_dict()["accuracy"] == 0.75


def test_score_overall_and_in_and_out_of_a_group() -> None:
    examples = [example(1, "", "a", "Black"), example(2, "", "b", "Black"), example(3, "", "a")]
    overall, by_group = score(["a", "a", "a"], examples, group=("race_ethnicity", "Black"))
    assert (overall.correct, overall.n) == (2, 3)
    assert by_group["race_ethnicity=Black"] == Score(1, 2) and by_group["others"] == Score(1, 1)


def test_majority_and_bag_of_words() -> None:
    train = [example(i, f"cough fever {i}", "pneumonia") for i in range(6)] + [
        example(10 + i, f"palpitations {i}", "atrial_fibrillation") for i in range(4)
    ]
    test = [example(20, "fever and cough", "pneumonia"), example(21, "palpitations", "x")]
    assert majority_predictions(train, test) == ["pneumonia", "pneumonia"]
    assert bag_of_words_predictions(train, test) == ["pneumonia", "atrial_fibrillation"]


def test_model_predictions_from_an_eval_run_folder_or_file(tmp_path: Path) -> None:
    (tmp_path / "diagnosis").mkdir()
    lines = [
        {"id": "diagnosis:P1:E1", "prediction": "sepsis ", "reference": "sepsis"},
        {"id": "readmission:P1:E1", "prediction": "no", "reference": "no"},
    ]
    file = tmp_path / "diagnosis" / "predictions.jsonl"
    file.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert read_model_predictions(tmp_path, "diagnosis") == {"diagnosis:P1:E1": "sepsis"}
    assert read_model_predictions(file, "readmission") == {"readmission:P1:E1": "no"}
    test = [
        TaskExample("diagnosis:P1:E1", "", "sepsis", {}),
        TaskExample("diagnosis:P2:E1", "", "x", {}),
    ]
    scores = model_scores("m", read_model_predictions(tmp_path, "diagnosis"), test)
    assert scores.overall == Score(1, 1)
    with pytest.raises(BadInputError, match="no predictions"):
        read_model_predictions(tmp_path, "summary")
    with pytest.raises(BadInputError, match="no prediction for any"):
        model_scores("m", {}, test)


def test_a_loglik_eval_task_folder_serves_its_dataset_task(tmp_path: Path) -> None:
    row = {"id": "diagnosis:P1:E1", "prediction": "sepsis", "reference": "sepsis"}
    (tmp_path / "diagnosis_loglik").mkdir()
    (tmp_path / "diagnosis_loglik" / "predictions.jsonl").write_text(json.dumps(row) + "\n")
    assert read_model_predictions(tmp_path, "diagnosis") == {"diagnosis:P1:E1": "sepsis"}
    (tmp_path / "diagnosis_other").mkdir()
    (tmp_path / "diagnosis_other" / "predictions.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(BadInputError, match="several eval tasks scored 'diagnosis'"):
        read_model_predictions(tmp_path, "diagnosis")
    (tmp_path / "diagnosis").mkdir()  # the task's own folder wins
    (tmp_path / "diagnosis" / "predictions.jsonl").write_text(
        json.dumps({**row, "prediction": "pneumonia"}) + "\n"
    )
    assert read_model_predictions(tmp_path, "diagnosis") == {"diagnosis:P1:E1": "pneumonia"}


def test_read_split_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="data build"):
        read_split(tmp_path, "diagnosis", "test")
