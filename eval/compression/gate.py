"""The compression gate: a variant fails when any subgroup loses more than a margin.

Judged per task and per (attribute, group) that is not small, on the change in accuracy
from the uncompressed model (:mod:`eval.compression.changes`):

* ``judge="ci"`` (default): a group fails when even the upper bound of its change's interval
  is below ``-margin``: the loss beyond the margin is shown by the data, as ``judge: ci`` in
  the release gates (:mod:`eval.gates`). Without an interval (``bootstrap 0``) the gate
  cannot judge and fails: it never passes on missing evidence.
* ``judge="ci_conservative"``: a group fails when the interval's lower bound is below
  ``-margin``: a loss beyond the margin is not ruled out (small groups then fail often).
* ``judge="point"``: a group fails when its point change is below ``-margin``.

The overall score is reported beside it but does not rescue a variant: the point of the gate
is the group that pays while the average holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eval.compression.changes import Change, TaskChanges
from llm.errors import BadInputError

Judge = Literal["ci", "ci_conservative", "point"]
JUDGES: tuple[Judge, ...] = ("ci", "ci_conservative", "point")
NO_INTERVAL = "no interval (bootstrap 0): a CI-judged gate cannot pass"


@dataclass(frozen=True)
class GroupFailure:
    """One subgroup that lost more than the margin."""

    task: str
    attribute: str
    group: str
    observed: float | None
    reason: str

    def as_json(self) -> dict[str, Any]:
        """The failure as ``report.json`` holds it."""
        return {
            "task": self.task,
            "attribute": self.attribute,
            "group": self.group,
            "observed": None if self.observed is None else round(self.observed, 6),
            "reason": self.reason,
        }


@dataclass
class GateOutcome:
    """A variant's verdict."""

    margin: float
    judge: Judge
    failures: list[GroupFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no subgroup lost more than the margin."""
        return not self.failures

    def verdict(self) -> str:
        """``pass``, or ``FAIL`` with the failing group that lost most (and how many more).

        The group named is the gate's own: the largest loss by the judged value
        (no interval first), which need not be the group with the largest point loss.
        """
        if self.passed:
            return "pass"
        first = min(
            self.failures, key=lambda f: float("-inf") if f.observed is None else f.observed
        )
        more = len(self.failures) - 1
        return f"FAIL: {first.attribute}={first.group} ({first.task})" + (
            f" and {more} more" if more else ""
        )

    def as_json(self) -> dict[str, Any]:
        """The gate's entry in ``report.json``."""
        return {
            "margin": self.margin,
            "judge": self.judge,
            "passed": self.passed,
            "failures": [f.as_json() for f in self.failures],
        }


def _observed(change: Change, judge: Judge) -> float | None:
    if judge == "point":
        return change.change
    if change.ci is None:
        return None
    return change.ci[1] if judge == "ci" else change.ci[0]


def check_compression_gate(
    tasks: Sequence[TaskChanges], *, margin: float, judge: Judge = "ci"
) -> GateOutcome:
    """Fail the variant for every non-small subgroup whose loss exceeds ``margin``.

    Args:
        tasks: the variant's changes, one entry per task.
        margin: the largest loss of accuracy a subgroup may show (0.02: two points).
        judge: which value of the change is compared with ``-margin`` (module docstring).

    Returns:
        The outcome, with one failure per failing (task, attribute, group).

    Raises:
        BadInputError: a margin outside [0, 1) or an unknown judge.
    """
    if not 0.0 <= margin < 1.0:
        raise BadInputError(f"the margin is a share of accuracy in [0, 1), got {margin}")
    if judge not in JUDGES:
        raise BadInputError(f"judge must be one of {', '.join(JUDGES)}, got {judge!r}")
    outcome = GateOutcome(margin=margin, judge=judge)
    for task in tasks:
        for attribute, groups in task.by_attribute.items():
            for group, change in groups.items():
                if change.small:
                    continue
                observed = _observed(change, judge)
                if observed is None:
                    outcome.failures.append(
                        GroupFailure(task.task, attribute, group, None, NO_INTERVAL)
                    )
                elif observed < -margin:
                    reason = f"{judge} change {observed:+.3f} below -{margin:g}"
                    outcome.failures.append(
                        GroupFailure(task.task, attribute, group, observed, reason)
                    )
    return outcome
