"""``report.html``: one self-contained page a clinician can read, from a subgroup report.

Everything is inside the file: CSS inline, plots embedded as
``data:image/png;base64,...`` (drawn by :mod:`eval.report.plots`), no script, no
external URL; it can be mailed or attached to a release ticket as is. The page
is the Jinja2 template ``templates/report.html.j2``, rendered with autoescaping
on, so every string that comes from data (group names are user data) is
escaped. The page is deterministic: the same report gives the same bytes
except the "rendered at" timestamp.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eval.report.model import AttributeReport, Interval, ReportValue, SubgroupReport
from eval.report.plots import attribute_figure, disparity_figure
from llm.errors import BadInputError

TEMPLATE = Path(__file__).parent / "templates" / "report.html.j2"

REPORT_HTML = "report.html"
NA = "n/a"


def _metric_info(name: str) -> tuple[str, bool]:
    """``(description, higher_is_better)`` from the metric registry; unknown names stay readable."""
    from eval.registry import METRICS

    try:
        metric = METRICS.get(name)()
    except BadInputError:
        return "", True
    return metric.description, metric.higher_is_better


def _num(value: float | None, digits: int = 3) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _ci(ci: Interval | None) -> str:
    return "" if ci is None else f"{_num(ci[0])} – {_num(ci[1])}"


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(estimate: ReportValue | None) -> dict[str, str]:
    if estimate is None:
        return {"value": NA, "ci": "", "note": ""}
    return {
        "value": _num(estimate.value),
        "ci": _ci(estimate.ci),
        "note": estimate.note or "",
    }


def _link(path: str, base_dir: Path | None) -> str:
    """A relative link from the report folder (``./`` keeps a path from reading as a scheme)."""
    if base_dir is None:
        return ""
    try:
        relative = os.path.relpath(Path(path).resolve(), base_dir.resolve())
    except ValueError:  # another drive on Windows
        return ""
    return relative if relative.startswith((".", "/")) else f"./{relative}"


def _header(report: SubgroupReport, base_dir: Path | None) -> dict[str, Any]:
    manifest = report.manifest
    args = manifest.args
    model = manifest.model_manifest
    model_info = None
    if model:
        contents = model.contents
        # a training/export manifest names the model in one of these; show what is there
        described = [
            f"{key}: {contents[key]}"
            for key in ("name", "model", "base_model", "kind", "git_commit")
            if isinstance(contents.get(key), (str, int, float))
        ]
        model_info = {
            "path": model.path,
            "href": _link(model.path, base_dir),
            "described": described,
        }
    predictions = manifest.predictions
    return {
        "predictions": (predictions.path if predictions else None) or args.predictions,
        "sha256": (predictions.sha256 if predictions else "")[:12],
        "n": report.n,
        "counts": manifest.counts.model_dump() if manifest.counts else {},
        "positive_label": report.positive_label,
        "metrics": report.metrics,
        "bootstrap": args.bootstrap,
        "confidence": args.confidence,
        "seed": args.seed,
        "min_group_size": args.min_group_size,
        "evaluated_at": manifest.finished_at,
        "git_commit": (manifest.git_commit or "")[:12],
        "package_version": manifest.package_version,
        "model": model_info,
        "gates_total": len(report.gates),
        "gates_failed": len(report.failed_gates),
        "passed": report.passed,
    }


def _gates(report: SubgroupReport) -> list[dict[str, Any]]:
    return [
        {
            "name": g.name,
            "attribute": g.attribute or "overall",
            "metric": g.metric,
            "rule": g.rule,
            "threshold": f"{g.threshold:g}",
            "observed": _num(g.observed),
            "use": "judge ci" if g.judge == "ci" else g.use,
            "group": g.group or "",
            "passed": g.passed,
            "insufficient": g.insufficient_data,
            "note": g.note or "",
            "excluded_share": _num(g.excluded_share),
            "excluded": [f"{e.group} (n={e.n}, {e.reason})" for e in g.excluded],
        }
        for g in report.gates
    ]


def _attribute(
    index: int, name: str, block: AttributeReport, report: SubgroupReport, min_size: int | None
) -> dict[str, Any]:
    metrics = report.metrics
    groups = [
        {
            "name": group,
            "n": entry.n,
            "small": entry.small,
            "cells": [_cell(entry.metrics.get(m)) for m in metrics],
        }
        for group, entry in block.groups.items()
    ]
    disparities = []
    for metric in metrics:
        gap = block.disparity.get(metric)
        disparities.append(
            {
                "metric": metric,
                "difference": _num(gap.difference if gap else None),
                "difference_ci": _ci(gap.difference_ci if gap else None),
                "ratio": _num(gap.ratio if gap else None),
                "ratio_ci": _ci(gap.ratio_ci if gap else None),
                "worst": (gap.worst_group if gap else None) or NA,
                "best": (gap.best_group if gap else None) or NA,
                "compared": ""
                if gap is None or gap.groups_compared is None
                else gap.groups_compared,
            }
        )
    tests = [
        {
            "metric": metric,
            "test": t.test or NA,
            "groups": f"{t.worst_group} vs {t.best_group}" if t.test else NA,
            "p": _num(t.p_value, 4),
            "p_holm": _num(t.p_value_holm, 4),
            "significant": {True: "yes", False: "no", None: NA}[t.significant],
        }
        for metric, t in (block.significance or {}).items()
    ]
    plot = attribute_figure(name, block, metrics, report.overall, min_group_size=min_size)
    return {
        "anchor": f"attribute-{index}",
        "name": name,
        "plot": _data_url(plot),
        "groups": groups,
        "any_small": any(g["small"] for g in groups),
        "disparities": disparities,
        "odds": None if block.equalized_odds is None else _cell(block.equalized_odds),
        "tests": tests,
    }


def render_html(
    report: SubgroupReport,
    *,
    base_dir: Path | None = None,
    rendered_at: datetime | None = None,
) -> str:
    """The report as one self-contained HTML page.

    Args:
        report: the subgroup report.
        base_dir: the folder the page is written to; links to local files
            (the model manifest) are made relative to it. ``None``: no links.
        rendered_at: the timestamp printed in the footer (default: now, UTC).

    Returns:
        The HTML text.
    """
    args = report.manifest.args
    min_size = args.min_group_size
    metrics = report.metrics
    info = {name: _metric_info(name) for name in metrics}
    overall = [
        {
            "metric": m,
            **_cell(report.overall.get(m)),
            "better": "higher" if info[m][1] else "lower",
            "description": info[m][0],
        }
        for m in metrics
    ]
    attributes = [
        _attribute(i, name, block, report, min_size)
        for i, (name, block) in enumerate(report.by_attribute.items())
    ]
    overview = disparity_figure(report)
    from jinja2 import Environment  # imported here: the CLI imports this module at start

    environment = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    stamp = (rendered_at or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    return template.render(
        header=_header(report, base_dir),
        gates=_gates(report),
        metrics=metrics,
        overall=overall,
        overview=None if overview is None else _data_url(overview),
        attributes=attributes,
        notes=report.notes,
        lower_better=[m for m in metrics if not info[m][1]],
        confidence=args.confidence,
        rendered_at=stamp,
    )


def write_html(report: SubgroupReport, out_dir: Path) -> Path:
    """Write ``report.html`` into ``out_dir``.

    Returns:
        The file written.
    """
    path = out_dir / REPORT_HTML
    path.write_text(render_html(report, base_dir=out_dir), encoding="utf-8")
    return path
