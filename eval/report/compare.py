"""Compare two subgroup reports (``report.json``) of model versions: a regression gate for CI.

:func:`compare_reports` lines up every value of a *base* and a *new* report,
overall, per attribute and group, and each attribute's gaps between groups
(``difference`` and ``equalized_odds_difference``), and says for each the
change ``new - base``, whether it is for the better (lower is better for
``false_positive_rate``, ``expected_calibration_error`` and every gap; higher
for other metrics) and whether it lies outside the intervals.

**Outside the intervals** means the two reports' intervals are disjoint: the
new interval lies entirely on one side of the base interval. The two reports'
bootstrap intervals were computed independently, so the check treats the two
estimates as independent. Disjoint 95 % intervals correspond to a two-sided
test at about the 0.6 % level for equal widths (conservative: a real change of
two standard errors is usually *not* flagged), whereas asking whether the new
point lies outside the base interval ignores the new estimate's own noise and
raises a false alarm for about one value in six when nothing changed; with
dozens of groups and metrics per report that would fail every build. When
both models were scored on the same examples the estimates are positively
correlated and a paired bootstrap would be sharper; report.json does not hold
what that needs.

A **regression** is a value of a group that is not small (in either report)
that got worse by more than ``max_regression`` (absolute) with disjoint
intervals, or, lacking an interval on either side (``--bootstrap 0``), by more
than ``max_regression`` alone (a gate never passes on missing evidence); a
value that was defined in the base and is undefined in the new report (a
model that stopped predicting the positive label has no precision) is one too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from eval.report.model import (
    EQUALIZED_ODDS,
    AttributeReport,
    Interval,
    ReportValue,
    SubgroupReport,
    read_report,
)
from llm.errors import BadInputError

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
CRITERION = "intervals_disjoint"
# a change smaller than this is rounding noise between two JSON files, not a change
TOLERANCE = 1e-12
# the largest tolerated worsening of a value, absolute, unless the caller says otherwise
MAX_REGRESSION = 0.02

Scope = Literal["overall", "group", "gap"]
Status = Literal[
    "improved", "worse", "unchanged", "undefined", "became undefined", "became defined"
]


@dataclass(frozen=True)
class Change:
    """One value compared between the two reports.

    Attributes:
        scope: ``overall``, ``group`` (a group's value) or ``gap`` (an
            attribute's difference between groups, or its equalized odds difference).
        attribute: the attribute (``None`` for overall values).
        group: the group (``group`` scope only).
        metric: the metric, or ``equalized_odds_difference``.
        base / new: the two values (``None`` when undefined).
        base_ci / new_ci: their intervals (``None`` without bootstrap).
        base_n / new_n: group sizes (``group`` scope only).
        small: the group is small in either report (never a regression).
        higher_is_better: direction of the value.
        change: ``new - base`` (``None`` when either is undefined).
        worse_by: the change in the bad direction (positive: worse).
        outside_ci: the intervals are disjoint; ``None`` when one is missing.
        status: improved, worse, unchanged, undefined, became undefined, became defined.
        regression: counts against the gate.
    """

    scope: Scope
    attribute: str | None
    group: str | None
    metric: str
    base: float | None
    new: float | None
    base_ci: Interval | None
    new_ci: Interval | None
    base_n: int | None
    new_n: int | None
    small: bool
    higher_is_better: bool
    change: float | None
    worse_by: float | None
    outside_ci: bool | None
    status: Status
    regression: bool

    @property
    def where(self) -> str:
        """``overall``, ``sex=female`` or ``sex (gap)``: where the value lives."""
        if self.scope == "overall":
            return "overall"
        if self.scope == "gap":
            return f"{self.attribute} (gap)"
        return f"{self.attribute}={self.group}"


@dataclass
class Comparison:
    """Everything :func:`compare_reports` found; ``to_json()`` is compare.json."""

    base: str
    new: str
    metrics: list[str]
    max_regression: float
    changes: list[Change]
    groups_only_in_base: dict[str, list[str]] = field(default_factory=dict)
    groups_only_in_new: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        """The changes that fail the gate, worst first."""
        found = [c for c in self.changes if c.regression]
        return sorted(found, key=lambda c: -(c.worse_by if c.worse_by is not None else math.inf))

    @property
    def passed(self) -> bool:
        return not self.regressions

    def to_json(self) -> dict[str, Any]:
        """The compare.json structure."""
        return {
            "base": self.base,
            "new": self.new,
            "metrics": self.metrics,
            "max_regression": self.max_regression,
            "criterion": CRITERION,
            "passed": self.passed,
            "regressions": [asdict(c) for c in self.regressions],
            "changes": [asdict(c) for c in self.changes],
            "groups_only_in_base": self.groups_only_in_base,
            "groups_only_in_new": self.groups_only_in_new,
            "notes": self.notes,
        }


def load_report(path: Path, role: str) -> SubgroupReport:
    """Read a report.json (or the report.json inside a folder).

    Args:
        path: the file, or an ``eval subgroups`` output folder.
        role: ``BASE`` or ``NEW``, named in errors.

    Raises:
        BadInputError: missing, unreadable, not JSON, or not a subgroup report.
    """
    return read_report(path, role)


def _directions(metrics: list[str]) -> dict[str, bool]:
    from eval.registry import METRICS

    return {name: METRICS.get(name).higher_is_better for name in metrics}


def _check_compatible(
    base: SubgroupReport, new: SubgroupReport, metrics: list[str] | None
) -> list[str]:
    """The metrics to compare.

    Raises:
        BadInputError: the reports differ in metrics (without ``metrics``),
            attributes or positive label; a requested metric missing from a report.
    """
    base_metrics, new_metrics = list(base.metrics), list(new.metrics)
    if metrics is None:
        if set(base_metrics) != set(new_metrics):
            raise BadInputError(
                "the reports have different metrics: "
                + _difference("base", base_metrics, "new", new_metrics)
                + "; pass --metrics to compare the ones both have"
            )
        chosen = base_metrics
    else:
        for role, have in (("BASE", base_metrics), ("NEW", new_metrics)):
            absent = [m for m in metrics if m not in have]
            if absent:
                raise BadInputError(
                    f"--metrics: {', '.join(absent)} not in the {role} report "
                    f"(it has {', '.join(have)})"
                )
        chosen = metrics
    base_attributes, new_attributes = list(base.by_attribute), list(new.by_attribute)
    if set(base_attributes) != set(new_attributes):
        raise BadInputError(
            "the reports break down by different attributes: "
            + _difference("base", base_attributes, "new", new_attributes)
        )
    if base.positive_label != new.positive_label:
        raise BadInputError(
            f"the reports use different positive labels (base {base.positive_label!r}, "
            f"new {new.positive_label!r}): their binary metrics are not comparable"
        )
    return chosen


def _difference(a_name: str, a: list[str], b_name: str, b: list[str]) -> str:
    only_a = [x for x in a if x not in b]
    only_b = [x for x in b if x not in a]
    parts = []
    if only_a:
        parts.append(f"only in {a_name}: {', '.join(only_a)}")
    if only_b:
        parts.append(f"only in {b_name}: {', '.join(only_b)}")
    return "; ".join(parts)


def _disjoint(a: Interval | None, b: Interval | None) -> bool | None:
    if a is None or b is None:
        return None
    return bool(b[0] > a[1] or b[1] < a[0])


def _change(
    *,
    scope: Scope,
    attribute: str | None,
    group: str | None,
    metric: str,
    base: ReportValue | None,
    new: ReportValue | None,
    higher_is_better: bool,
    small: bool,
    max_regression: float,
    base_n: int | None = None,
    new_n: int | None = None,
) -> Change:
    # a value missing from a report (a hand-made one) reads as undefined
    b_value, b_ci = (base.value, base.ci) if base is not None else (None, None)
    n_value, n_ci = (new.value, new.ci) if new is not None else (None, None)
    change = worse_by = outside = None
    regression = False
    status: Status
    if b_value is None and n_value is None:
        status = "undefined"
    elif n_value is None:
        status = "became undefined"
        regression = not small
    elif b_value is None:
        status = "became defined"
    else:
        change = n_value - b_value
        worse_by = -change if higher_is_better else change
        outside = _disjoint(b_ci, n_ci)
        if abs(change) <= TOLERANCE:
            status = "unchanged"
        else:
            status = "worse" if worse_by > 0 else "improved"
        regression = (
            not small and status == "worse" and worse_by > max_regression and outside is not False
        )
    return Change(
        scope=scope,
        attribute=attribute,
        group=group,
        metric=metric,
        base=b_value,
        new=n_value,
        base_ci=b_ci,
        new_ci=n_ci,
        base_n=base_n,
        new_n=new_n,
        small=small,
        higher_is_better=higher_is_better,
        change=change,
        worse_by=worse_by,
        outside_ci=outside,
        status=status,
        regression=regression,
    )


def compare_reports(
    base: SubgroupReport,
    new: SubgroupReport,
    *,
    max_regression: float = MAX_REGRESSION,
    metrics: list[str] | None = None,
    base_name: str = "base",
    new_name: str = "new",
) -> Comparison:
    """Compare every value of two subgroup reports.

    Args:
        base: the reference report, e.g. the released model's.
        new: the candidate's report.
        max_regression: largest tolerated worsening (absolute, in the metric's units).
        metrics: the metrics to compare (default: all; then both reports must have the same).
        base_name / new_name: how the reports are named in the output (their paths).

    Returns:
        The comparison; ``passed`` is false when a regression was found.

    Raises:
        BadInputError: ``max_regression`` negative or not finite; the reports
            differ in metrics, attributes or positive label (the message says which).
    """
    if not math.isfinite(max_regression) or max_regression < 0:
        raise BadInputError(f"--max-regression must be 0 or more, got {max_regression}")
    chosen = _check_compatible(base, new, metrics)
    higher = _directions(chosen)
    comparison = Comparison(
        base=base_name, new=new_name, metrics=chosen, max_regression=max_regression, changes=[]
    )
    for metric in chosen:
        comparison.changes.append(
            _change(
                scope="overall",
                attribute=None,
                group=None,
                metric=metric,
                base=base.overall.get(metric),
                new=new.overall.get(metric),
                higher_is_better=higher[metric],
                small=False,
                max_regression=max_regression,
            )
        )
    for attribute, base_block in base.by_attribute.items():
        new_block = new.by_attribute[attribute]
        base_groups, new_groups = base_block.groups, new_block.groups
        only_base = [g for g in base_groups if g not in new_groups]
        only_new = [g for g in new_groups if g not in base_groups]
        if only_base:
            comparison.groups_only_in_base[attribute] = only_base
        if only_new:
            comparison.groups_only_in_new[attribute] = only_new
        for group, base_entry in base_groups.items():
            new_entry = new_groups.get(group)
            if new_entry is None:
                continue
            small = base_entry.small or new_entry.small
            for metric in chosen:
                comparison.changes.append(
                    _change(
                        scope="group",
                        attribute=attribute,
                        group=group,
                        metric=metric,
                        base=base_entry.metrics.get(metric),
                        new=new_entry.metrics.get(metric),
                        higher_is_better=higher[metric],
                        small=small,
                        base_n=base_entry.n,
                        new_n=new_entry.n,
                        max_regression=max_regression,
                    )
                )
        comparison.changes += _gap_changes(attribute, base_block, new_block, chosen, max_regression)
    _add_notes(comparison, base, new)
    return comparison


def _gap_changes(
    attribute: str,
    base_block: AttributeReport,
    new_block: AttributeReport,
    metrics: list[str],
    max_regression: float,
) -> list[Change]:
    changes = []
    for metric in metrics:
        changes.append(
            _change(
                scope="gap",
                attribute=attribute,
                group=None,
                metric=metric,
                base=base_block.disparity_value(metric),
                new=new_block.disparity_value(metric),
                higher_is_better=False,  # a gap between groups should shrink
                small=False,
                max_regression=max_regression,
            )
        )
    if base_block.equalized_odds is not None or new_block.equalized_odds is not None:
        changes.append(
            _change(
                scope="gap",
                attribute=attribute,
                group=None,
                metric=EQUALIZED_ODDS,
                base=base_block.equalized_odds,
                new=new_block.equalized_odds,
                higher_is_better=False,
                small=False,
                max_regression=max_regression,
            )
        )
    return changes


def _add_notes(comparison: Comparison, base: SubgroupReport, new: SubgroupReport) -> None:
    notes = comparison.notes
    for attribute, groups in comparison.groups_only_in_new.items():
        notes.append(f"{attribute}: group(s) only in the new report: {', '.join(groups)}")
    for attribute, groups in comparison.groups_only_in_base.items():
        notes.append(
            f"{attribute}: group(s) missing from the new report: {', '.join(groups)} "
            "(no evidence for them; was the new model scored on other examples?)"
        )
    if base.n != new.n:
        notes.append(
            f"the reports count different examples (base {base.n}, new {new.n}): "
            "changes mix model and data differences"
        )
    base_args, new_args = base.manifest.args, new.manifest.args
    for key in ("min_group_size", "confidence", "bootstrap"):
        base_value, new_value = getattr(base_args, key), getattr(new_args, key)
        if base_value != new_value:
            notes.append(f"--{key.replace('_', '-')} differs (base {base_value}, new {new_value})")
    if any(c.outside_ci is None and c.change is not None for c in comparison.changes):
        notes.append(
            "some values have no interval in one report (--bootstrap 0?): for them the "
            "change alone decides"
        )
