"""A computed :class:`~eval.subgroups.frame.SubgroupFrame` as a typed report.

:func:`build_report` turns the engine's estimates into
:class:`~eval.report.model.SubgroupReport` (what ``report.json`` holds).
Undefined numbers (NaN) become ``None`` with a ``note`` saying why, and every
undefined value of a compared group and every attribute with fewer than two
comparable groups is listed in the report's ``notes``.
"""

from __future__ import annotations

import math

from eval.report.model import (
    AttributeReport,
    DisparityReport,
    GapTestReport,
    GroupReport,
    ReportValue,
    SubgroupReport,
)
from eval.subgroups.frame import Disparity, Estimate, SubgroupFrame
from eval.subgroups.significance import GapTest


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _interval(ci: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if ci is None else (float(ci[0]), float(ci[1]))


def report_value(estimate: Estimate) -> ReportValue:
    """One estimate as a report value (with ``note``, ``undefined_resamples`` when set)."""
    return ReportValue(
        value=_number(estimate.value),
        ci=_interval(estimate.ci),
        note=estimate.note or None,
        undefined_resamples=estimate.undefined_resamples,
        trials=estimate.trials,
    )


def disparity_report(disparity: Disparity) -> DisparityReport:
    """``difference, ratio, worst_group, best_group`` and their intervals."""
    return DisparityReport(
        difference=_number(disparity.difference),
        ratio=_number(disparity.ratio),
        worst_group=disparity.worst_group,
        best_group=disparity.best_group,
        difference_ci=_interval(disparity.difference_ci),
        ratio_ci=_interval(disparity.ratio_ci),
        groups_compared=disparity.groups_compared,
    )


def gap_test_report(test: GapTest) -> GapTestReport:
    """The report entry of one worst-versus-best gap test."""
    return GapTestReport(
        test=test.test,
        worst_group=test.worst_group,
        best_group=test.best_group,
        gap=test.gap,
        statistic=test.statistic,
        p_value=test.p_value,
        p_value_holm=test.p_value_holm,
        significant=test.significant,
        note=test.note,
    )


def build_report(
    frame: SubgroupFrame,
    *,
    significance: dict[str, dict[str, GapTest]] | None = None,
) -> SubgroupReport:
    """The report of a computed frame (``gates`` and ``manifest`` are filled in later).

    Args:
        frame: the computed frame.
        significance: worst-versus-best gap tests per attribute and metric, if run.

    Returns:
        The report, with ``notes``: every undefined value and every attribute
        with fewer than two comparable groups.
    """
    metrics = [m.name for m in frame.metrics]
    notes: list[str] = []
    overall = {name: report_value(e) for name, e in frame.overall.items()}
    for name, value in overall.items():
        if value.note:
            notes.append(f"overall {name} undefined: {value.note}")
    by_attribute: dict[str, AttributeReport] = {}
    for attribute, groups in frame.by_group.items():
        group_reports: dict[str, GroupReport] = {}
        for group, result in groups.items():
            for name, estimate in result.metrics.items():
                if estimate.note and not result.small:
                    notes.append(f"{attribute}={group}: {name} undefined: {estimate.note}")
            group_reports[group] = GroupReport(
                n=result.n,
                small=result.small,
                metrics={name: report_value(e) for name, e in result.metrics.items()},
            )
        compared = int(frame.large_groups(attribute).sum())
        if compared < 2:
            notes.append(
                f"{attribute}: {compared} group(s) with at least {frame.min_group_size} examples; "
                "disparities need two"
            )
        odds = frame.equalized_odds_difference(attribute)
        by_attribute[attribute] = AttributeReport(
            groups=group_reports,
            disparity={m: disparity_report(frame.disparity(attribute, m)) for m in metrics},
            equalized_odds=None if odds is None else report_value(odds),
            significance=None
            if significance is None
            else {m: gap_test_report(t) for m, t in significance[attribute].items()},
        )
    return SubgroupReport(
        metrics=metrics,
        n=frame.n,
        positive_label=frame.positive_label,
        overall=overall,
        by_attribute=by_attribute,
        notes=notes,
    )
