"""``compare.md``: the comparison of two subgroup reports, regressions first.

The cell formatting here is shared with the CLI's rich tables, so the terminal
and the file say the same thing.
"""

from __future__ import annotations

from eval.report.compare import Change, Comparison
from eval.report.markdown import NA
from eval.report.model import Interval

COLUMNS = ["where", "metric", "base [CI]", "new [CI]", "change", "better", "intervals"]


def value_with_ci(value: float | None, ci: Interval | None) -> str:
    """``0.912 [0.890, 0.931]``, ``0.912`` without interval, ``n/a`` when undefined."""
    if value is None:
        return NA
    if ci is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def change_text(change: Change) -> str:
    """Signed ``new - base`` (``+0.031``), or the status when a side is undefined."""
    return change.status if change.change is None else f"{change.change:+.3f}"


def intervals_text(change: Change) -> str:
    """Whether the two intervals are disjoint, in words."""
    return {True: "disjoint", False: "overlap", None: NA}[change.outside_ci]


def change_row(change: Change) -> list[str]:
    """One table row, in :data:`COLUMNS` order."""
    where = change.where
    if change.scope == "group" and change.base_n is not None:
        where += f" (n {change.base_n}→{change.new_n})"
    if change.small:
        where += " (small)"
    return [
        where,
        change.metric,
        value_with_ci(change.base, change.base_ci),
        value_with_ci(change.new, change.new_ci),
        change_text(change),
        "higher" if change.higher_is_better else "lower",
        intervals_text(change),
    ]


def worse_within_noise(comparison: Comparison) -> list[Change]:
    """Changes for the worse beyond ``max_regression`` that are not regressions (overlapping
    intervals, or a small group), worst first."""
    found = [
        c
        for c in comparison.changes
        if c.status == "worse"
        and not c.regression
        and c.worse_by is not None
        and c.worse_by > comparison.max_regression
    ]
    return sorted(found, key=lambda c: -(c.worse_by or 0.0))


def clear_improvements(comparison: Comparison) -> list[Change]:
    """Improvements beyond ``max_regression`` with disjoint intervals, largest first."""
    found = [
        c
        for c in comparison.changes
        if c.status == "improved"
        and c.worse_by is not None
        and -c.worse_by > comparison.max_regression
        and c.outside_ci is not False
    ]
    return sorted(found, key=lambda c: c.worse_by or 0.0)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(changes: list[Change]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(c) for c in change_row(ch)) + " |" for ch in changes]
    return [*lines, ""]


def render_comparison_markdown(comparison: Comparison) -> str:
    """Markdown: header and verdict, regressions, worse within noise, improvements,
    groups in one report only, notes, then every compared value."""
    regressions = comparison.regressions
    verdict = (
        "PASSED: no regression"
        if comparison.passed
        else f"FAILED: {len(regressions)} regression(s)"
    )
    lines = [
        "# Report comparison",
        "",
        f"- base: `{comparison.base}`",
        f"- new: `{comparison.new}`",
        f"- metrics: {', '.join(comparison.metrics)}",
        f"- a regression: worse by more than {comparison.max_regression:g} (absolute) with "
        "disjoint intervals (or no interval to tell), in a group that is not small; or a "
        "value that became undefined",
        f"- verdict: **{verdict}**",
        "",
        "## Regressions",
        "",
    ]
    lines += _table(regressions) if regressions else ["None.", ""]
    noise = worse_within_noise(comparison)
    lines += ["## Worse, but within the intervals or in small groups", ""]
    lines += _table(noise) if noise else ["None.", ""]
    better = clear_improvements(comparison)
    lines += ["## Clear improvements", ""]
    lines += _table(better) if better else ["None.", ""]
    if comparison.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in comparison.notes], ""]
    lines += ["## Every compared value", ""]
    lines += _table(comparison.changes)
    return "\n".join(lines)
