"""How hard a classification task is: reference predictors scored on a built dataset's test split.

A task whose answer a keyword gives away is no test of a model. The
predictors here set the scale a fine-tuned model's accuracy is read against:
the majority class (fit on train), a bag-of-words logistic regression (word
counts of the user turn, fit on train), a rule that reads the answer from the
input (when the data's generator has one), and models' prediction files from
``clinical-llm eval run``. Accuracies come with 95% Wilson score intervals.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.files import parse_json_line
from llm.intervals import Z_95
from llm.intervals import wilson_interval as proportion_interval


@dataclass(frozen=True)
class TaskExample:
    """One example as the predictors see it: id, user-turn text, answer, subgroup attributes."""

    id: str
    text: str
    answer: str
    demographics: dict[str, str]


@dataclass(frozen=True)
class Score:
    """Accuracy of one predictor on a set of examples, with its 95% Wilson interval."""

    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else math.nan

    def interval(self) -> tuple[float, float]:
        """The 95% Wilson score interval of the accuracy (NaN, NaN when ``n`` is 0)."""
        return wilson_interval(self.correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval()
        return {
            "accuracy": self.accuracy,
            "ci95": [low, high],
            "correct": self.correct,
            "n": self.n,
        }


@dataclass
class PredictorScores:
    """A predictor's score over the test split, and within and outside one subgroup."""

    name: str
    overall: Score
    by_group: dict[str, Score] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "predictor": self.name,
            "overall": self.overall.to_dict(),
            "by_group": {g: s.to_dict() for g, s in self.by_group.items()},
        }


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of ``correct / n``, by :func:`llm.intervals.wilson_interval`.

    Returns:
        (low, high); (NaN, NaN) when ``n`` is 0, so that tables print it as ``nan``.
    """
    return proportion_interval(correct, n, z) or (math.nan, math.nan)


def read_split(dataset_dir: Path, task: str, split: str) -> list[TaskExample]:
    """Examples of ``<dataset_dir>/<task>/<split>.jsonl`` (from ``clinical-llm data build``).

    Raises:
        BadInputError: the file is missing.
    """
    path = dataset_dir / task / f"{split}.jsonl"
    if not path.is_file():
        raise BadInputError(f"{path}: not found; build the datasets with `clinical-llm data build`")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        row = parse_json_line(line, path=str(path), line=number)
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        examples.append(TaskExample(row["id"], str(user), row["answer"], row["demographics"]))
    return examples


def score(
    predictions: Sequence[str],
    examples: Sequence[TaskExample],
    *,
    group: tuple[str, str] | None = None,
) -> tuple[Score, dict[str, Score]]:
    """Accuracy of ``predictions`` (aligned with ``examples``), overall and in/out of ``group``.

    Args:
        predictions: one answer per example.
        examples: the examples scored.
        group: ``(attribute, value)``: also score the examples whose
            ``demographics[attribute] == value`` and the others.

    Returns:
        The overall score and, with ``group``, ``{"ATTR=VALUE": ..., "others": ...}``.
    """
    hits = [p == e.answer for p, e in zip(predictions, examples, strict=True)]
    overall = Score(sum(hits), len(hits))
    by_group: dict[str, Score] = {}
    if group is not None:
        attribute, value = group
        inside = [e.demographics.get(attribute) == value for e in examples]
        by_group[f"{attribute}={value}"] = Score(
            sum(h for h, i in zip(hits, inside, strict=True) if i), sum(inside)
        )
        by_group["others"] = Score(
            sum(h for h, i in zip(hits, inside, strict=True) if not i), len(hits) - sum(inside)
        )
    return overall, by_group


def majority_predictions(train: Sequence[TaskExample], test: Sequence[TaskExample]) -> list[str]:
    """The most common training answer, for every test example (ties: the first in sorted order)."""
    counts = Counter(e.answer for e in train)
    best = max(sorted(counts), key=lambda a: counts[a])
    return [best] * len(test)


def bag_of_words_predictions(
    train: Sequence[TaskExample],
    test: Sequence[TaskExample],
    *,
    ngram_range: tuple[int, int] = (1, 1),
) -> list[str]:
    """Logistic regression on word counts of the user turn, fit on ``train``.

    scikit-learn's ``CountVectorizer`` (lower-cased words of two or more
    letters or digits) and ``LogisticRegression`` (L2, C=1, lbfgs).

    Args:
        train: the training split.
        test: the examples to predict.
        ngram_range: word n-gram sizes (``(1, 1)``: single words).
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(ngram_range=ngram_range)
    features = vectorizer.fit_transform([e.text for e in train])
    model = LogisticRegression(max_iter=5000)
    model.fit(features, [e.answer for e in train])
    return [str(p) for p in model.predict(vectorizer.transform([e.text for e in test]))]


def rule_predictions(rule: Callable[[str], str], test: Sequence[TaskExample]) -> list[str]:
    """``rule(text)`` for every test example."""
    return [rule(e.text) for e in test]


def read_model_predictions(path: Path, task: str) -> dict[str, str]:
    """Predictions of ``clinical-llm eval run`` for ``task``, by example id.

    Args:
        path: an eval run's output folder, or a predictions file itself (its
            lines whose id starts with ``<task>:``). In a folder,
            ``<task>/predictions.jsonl`` is read; without it, the one eval task
            folder whose examples come from ``task``'s dataset (``diagnosis_loglik``
            for ``diagnosis``).
        task: the dataset task name.

    Raises:
        BadInputError: no predictions for the task there, or two eval tasks of a
            folder scored it (name the file instead).
    """
    if path.is_dir():
        file = path / task / "predictions.jsonl"
        if not file.is_file():
            found = {
                candidate: rows
                for candidate in sorted(path.glob("*/predictions.jsonl"))
                if (rows := _task_rows(candidate, task))
            }
            if len(found) > 1:
                raise BadInputError(
                    f"{path}: several eval tasks scored {task!r} "
                    f"({', '.join(str(f) for f in found)}); pass one predictions file"
                )
            if found:
                return next(iter(found.values()))
    else:
        file = path
    if not file.is_file():
        raise BadInputError(f"{file}: no predictions for task {task!r} (expected eval run output)")
    return _task_rows(file, task)


def _task_rows(file: Path, task: str) -> dict[str, str]:
    lines = enumerate(file.read_text(encoding="utf-8").splitlines(), start=1)
    rows = [parse_json_line(text, path=str(file), line=n) for n, text in lines if text]
    return {
        str(r["id"]): str(r["prediction"]).strip()
        for r in rows
        if str(r["id"]).startswith(f"{task}:")
    }


def model_scores(
    name: str,
    predictions: dict[str, str],
    test: Sequence[TaskExample],
    *,
    group: tuple[str, str] | None = None,
) -> PredictorScores:
    """Score a model's predictions on the test examples it has predictions for.

    Raises:
        BadInputError: none of the test examples has a prediction.
    """
    covered = [e for e in test if e.id in predictions]
    if not covered:
        raise BadInputError(f"--predictions {name}: no prediction for any test example")
    overall, by_group = score([predictions[e.id] for e in covered], covered, group=group)
    return PredictorScores(name, overall, by_group)
