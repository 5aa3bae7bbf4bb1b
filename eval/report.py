"""The subgroup report: ``report.json`` (contract in DESIGN.md) and ``report.md``.

:func:`build_report` turns a computed :class:`~eval.subgroups.SubgroupFrame`
into the report.json structure; :func:`write_reports` writes every rendering of
a report into a folder: json, markdown and a self-contained html page.
Undefined numbers (NaN) are written as ``null`` with a ``note`` saying why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from eval.report_html import write_html
from eval.report_md import render_markdown
from eval.significance import GapTest
from eval.subgroups import EQUALIZED_ODDS, Disparity, Estimate, SubgroupFrame

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
# keys of report.json that outside tools rely on (DESIGN.md, "Subgroup report")
TOP_LEVEL_KEYS = (
    "metrics",
    "n",
    "positive_label",
    "overall",
    "by_attribute",
    "gates",
    "passed",
    "manifest",
)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [float(ci[0]), float(ci[1])]


def estimate_json(estimate: Estimate) -> dict[str, Any]:
    """``{"value", "ci"}`` plus ``note`` / ``undefined_resamples`` when they say something."""
    out: dict[str, Any] = {"value": _number(estimate.value), "ci": _interval(estimate.ci)}
    if estimate.note:
        out["note"] = estimate.note
    if estimate.undefined_resamples:
        out["undefined_resamples"] = estimate.undefined_resamples
    return out


def disparity_json(disparity: Disparity) -> dict[str, Any]:
    """``difference, ratio, worst_group, best_group`` and their intervals."""
    return {
        "difference": _number(disparity.difference),
        "ratio": _number(disparity.ratio),
        "worst_group": disparity.worst_group,
        "best_group": disparity.best_group,
        "difference_ci": _interval(disparity.difference_ci),
        "ratio_ci": _interval(disparity.ratio_ci),
        "groups_compared": disparity.groups_compared,
    }


def build_report(
    frame: SubgroupFrame,
    *,
    significance: dict[str, dict[str, GapTest]] | None = None,
) -> dict[str, Any]:
    """The report.json structure of a computed frame (``gates``/``manifest`` filled in later).

    Args:
        frame: the computed frame.
        significance: worst-versus-best gap tests per attribute and metric, if run.

    Returns:
        A JSON-ready dict whose keys follow DESIGN.md, plus ``notes``: every
        undefined value and every attribute with fewer than two comparable groups.
    """
    metrics = [m.name for m in frame.metrics]
    notes: list[str] = []
    overall = {name: estimate_json(e) for name, e in frame.overall.items()}
    for name, value in overall.items():
        if "note" in value:
            notes.append(f"overall {name} undefined: {value['note']}")
    by_attribute: dict[str, Any] = {}
    for attribute, groups in frame.by_group.items():
        groups_json: dict[str, Any] = {}
        for group, result in groups.items():
            entry: dict[str, Any] = {"n": result.n, "small": result.small}
            for name, estimate in result.metrics.items():
                entry[name] = estimate_json(estimate)
                if estimate.note and not result.small:
                    notes.append(f"{attribute}={group}: {name} undefined: {estimate.note}")
            groups_json[group] = entry
        disparity: dict[str, Any] = {
            m: disparity_json(frame.disparity(attribute, m)) for m in metrics
        }
        compared = int(frame.large_groups(attribute).sum())
        if compared < 2:
            notes.append(
                f"{attribute}: {compared} group(s) with at least {frame.min_group_size} examples; "
                "disparities need two"
            )
        odds = frame.equalized_odds_difference(attribute)
        if odds is not None:
            disparity[EQUALIZED_ODDS] = estimate_json(odds)
        block: dict[str, Any] = {"groups": groups_json, "disparity": disparity}
        if significance is not None:
            block["significance"] = {m: t.to_dict() for m, t in significance[attribute].items()}
        by_attribute[attribute] = block
    return {
        "metrics": metrics,
        "n": frame.n,
        "positive_label": frame.positive_label,
        "overall": overall,
        "by_attribute": by_attribute,
        "gates": [],
        "passed": True,
        "manifest": {},
        "notes": notes,
    }


def write_reports(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write every rendering of ``report`` into ``out_dir`` (created when missing).

    Returns:
        The files written: ``report.json``, ``report.md`` and ``report.html``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / REPORT_JSON
    # allow_nan=False: a NaN that slipped past the cleaning is a bug, not "NaN" in the file
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path = out_dir / REPORT_MD
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return [json_path, md_path, write_html(report, out_dir)]
