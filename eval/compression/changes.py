"""Accuracy changes from the uncompressed model, overall and per subgroup, with paired CIs.

Both models answered the same examples, so the change is measured on pairs: per example,
``correct(variant) - correct(base)`` in {-1, 0, 1}; a group's change is its mean. The
interval is a paired bootstrap (examples resampled within the group, the same draw for both
models), which is much tighter than two independent intervals when the variant changes only
a few answers. Groups follow the subgroup engine's naming (``unknown`` for a missing value,
intersections ``a*b`` with groups ``valueA*valueB``); groups under ``min_group_size`` are
reported as ``small`` and never name the worst group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eval.metrics.labels import canonical_label
from eval.subgroups.intersections import attribute_name, attribute_parts
from eval.subgroups.predictions import canonical_group
from llm.errors import BadInputError

MISMATCHED_IDS = "{task}: the two prediction sets hold different examples ({detail})"


@dataclass(frozen=True)
class Change:
    """Accuracy of the base model and the variant on the same examples, and the change."""

    n: int
    base: float
    variant: float
    change: float
    ci: tuple[float, float] | None
    small: bool = False

    def as_json(self) -> dict[str, Any]:
        """The change as ``report.json`` holds it."""
        return {
            "n": self.n,
            "small": self.small,
            "base": round(self.base, 6),
            "variant": round(self.variant, 6),
            "change": round(self.change, 6),
            "ci": None if self.ci is None else [round(self.ci[0], 6), round(self.ci[1], 6)],
        }


@dataclass(frozen=True)
class WorstGroup:
    """The subgroup that loses most: the lowest change below zero among groups not small."""

    attribute: str
    group: str
    change: Change


@dataclass
class TaskChanges:
    """One task's changes: overall, per attribute and group, and the group that loses most."""

    task: str
    overall: Change
    by_attribute: dict[str, dict[str, Change]] = field(default_factory=dict)
    worst: WorstGroup | None = None

    def as_json(self) -> dict[str, Any]:
        """The task's entry in ``report.json``."""
        return {
            "task": self.task,
            "overall": self.overall.as_json(),
            "by_attribute": {
                attribute: {group: c.as_json() for group, c in groups.items()}
                for attribute, groups in self.by_attribute.items()
            },
            "worst_group": None
            if self.worst is None
            else {
                "attribute": self.worst.attribute,
                "group": self.worst.group,
                **self.worst.change.as_json(),
            },
        }


def correct(row: Mapping[str, Any]) -> bool:
    """Whether a prediction row's label equals its reference (the ``accuracy`` definition)."""
    return canonical_label(row["prediction"]) == canonical_label(row["reference"])


def _group(row: Mapping[str, Any], attribute: str) -> str:
    demographics = row.get("demographics") or {}
    return attribute_name(
        [canonical_group(demographics.get(part)) for part in attribute_parts(attribute)]
    )


def _paired(
    base: np.ndarray, variant: np.ndarray, *, bootstrap: int, confidence: float, rng: Any
) -> Change:
    n = len(base)
    diff = variant.astype(float) - base.astype(float)
    ci: tuple[float, float] | None = None
    if bootstrap > 0 and n > 0:
        draws = rng.integers(0, n, size=(bootstrap, n))
        means = diff[draws].mean(axis=1)
        tail = (1.0 - confidence) / 2.0
        ci = (float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail)))
    return Change(
        n=n,
        base=float(base.mean()) if n else float("nan"),
        variant=float(variant.mean()) if n else float("nan"),
        change=float(diff.mean()) if n else float("nan"),
        ci=ci,
    )


def task_changes(
    task: str,
    base_rows: Sequence[Mapping[str, Any]],
    variant_rows: Sequence[Mapping[str, Any]],
    *,
    attributes: Sequence[str],
    bootstrap: int = 1000,
    confidence: float = 0.95,
    min_group_size: int = 5,
    seed: int = 0,
) -> TaskChanges:
    """Pair two models' predictions on one task and measure the accuracy changes.

    Args:
        task: the task's name (for messages).
        base_rows: the uncompressed model's prediction rows (``id, prediction, reference,
            demographics``).
        variant_rows: the compressed variant's rows, on the same examples.
        attributes: demographic attributes, ``a*b`` for intersections.
        bootstrap: resamples of the paired bootstrap; 0: no intervals.
        confidence: the intervals' level.
        min_group_size: groups with fewer examples are ``small``.
        seed: the bootstrap's seed (the same draw for every group of a run).

    Returns:
        Changes overall and per group, and the non-small group that loses most (None when
        no such group loses accuracy).

    Raises:
        BadInputError: the two sets hold different examples or different references.
    """
    by_id = {str(r["id"]): r for r in base_rows}
    variant_by_id = {str(r["id"]): r for r in variant_rows}
    if by_id.keys() != variant_by_id.keys():
        only_base = len(by_id.keys() - variant_by_id.keys())
        only_variant = len(variant_by_id.keys() - by_id.keys())
        detail = f"{only_base} only in the base run, {only_variant} only in the variant's"
        raise BadInputError(MISMATCHED_IDS.format(task=task, detail=detail))
    ids = sorted(by_id)
    for id_ in ids:
        if canonical_label(by_id[id_]["reference"]) != canonical_label(
            variant_by_id[id_]["reference"]
        ):
            detail = f"example {id_} has two references"
            raise BadInputError(MISMATCHED_IDS.format(task=task, detail=detail))
    base = np.array([correct(by_id[i]) for i in ids], dtype=bool)
    variant = np.array([correct(variant_by_id[i]) for i in ids], dtype=bool)
    rng = np.random.default_rng(seed)
    result = TaskChanges(
        task=task,
        overall=_paired(base, variant, bootstrap=bootstrap, confidence=confidence, rng=rng),
    )
    worst: WorstGroup | None = None
    for attribute in attributes:
        groups = np.array([_group(by_id[i], attribute) for i in ids])
        result.by_attribute[attribute] = {}
        for group in sorted(set(groups.tolist())):
            mask = groups == group
            change = _paired(
                base[mask], variant[mask], bootstrap=bootstrap, confidence=confidence, rng=rng
            )
            if change.n < min_group_size:
                change = Change(**{**change.__dict__, "small": True})
            result.by_attribute[attribute][group] = change
            if change.small or not change.change < 0:
                continue
            if worst is None or _loses_more(change, worst.change):
                worst = WorstGroup(attribute, group, change)
    result.worst = worst
    return result


def _loses_more(a: Change, b: Change) -> bool:
    # lower change first; on a tie, the one whose interval reaches higher is less sure, so
    # the lower upper bound names the worse group
    upper_a = a.ci[1] if a.ci else a.change
    upper_b = b.ci[1] if b.ci else b.change
    return (a.change, upper_a) < (b.change, upper_b)
