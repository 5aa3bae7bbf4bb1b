"""``report.html``: one self-contained page a clinician can read, from a report.json structure.

Everything is inside the file: CSS inline, plots embedded as
``data:image/png;base64,...`` (drawn by :mod:`eval.plots`), no script, no
external URL; it can be mailed or attached to a release ticket as is. Every
string that comes from data (group names are user data) goes through Jinja2's
autoescaping. The page is deterministic: the same report gives the same bytes
except the "rendered at" timestamp.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eval.plots import attribute_figure, disparity_figure
from eval.report_html_template import TEMPLATE
from llm.errors import BadInputError

REPORT_HTML = "report.html"
NA = "n/a"
EQUALIZED_ODDS = "equalized_odds_difference"


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


def _ci(ci: list[float] | None) -> str:
    return "" if ci is None else f"{_num(ci[0])} – {_num(ci[1])}"


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(estimate: dict[str, Any] | None) -> dict[str, str]:
    estimate = estimate or {}
    return {
        "value": _num(estimate.get("value")),
        "ci": _ci(estimate.get("ci")),
        "note": estimate.get("note") or "",
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


def _header(report: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    manifest = report.get("manifest") or {}
    args = manifest.get("args") or {}
    counts = manifest.get("counts") or {}
    predictions = manifest.get("predictions") or {}
    model = manifest.get("model_manifest")
    model_info = None
    if model:
        contents = model.get("contents") or {}
        # a training/export manifest names the model in one of these; show what is there
        described = [
            f"{key}: {contents[key]}"
            for key in ("name", "model", "base_model", "kind", "git_commit")
            if isinstance(contents.get(key), (str, int, float))
        ]
        model_info = {
            "path": model.get("path", ""),
            "href": _link(model.get("path", ""), base_dir),
            "described": described,
        }
    gates = report.get("gates") or []
    failed = sum(1 for g in gates if not g["passed"])
    return {
        "predictions": predictions.get("path") or args.get("predictions"),
        "sha256": (predictions.get("sha256") or "")[:12],
        "n": report["n"],
        "counts": counts,
        "positive_label": report.get("positive_label"),
        "metrics": report["metrics"],
        "bootstrap": args.get("bootstrap"),
        "confidence": args.get("confidence"),
        "seed": args.get("seed"),
        "min_group_size": args.get("min_group_size"),
        "evaluated_at": manifest.get("finished_at"),
        "git_commit": (manifest.get("git_commit") or "")[:12],
        "package_version": manifest.get("package_version"),
        "model": model_info,
        "gates_total": len(gates),
        "gates_failed": failed,
        "passed": bool(report["passed"]),
    }


def _gates(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": g["name"],
            "attribute": g["attribute"] or "overall",
            "metric": g["metric"],
            "rule": g["rule"],
            "threshold": f"{g['threshold']:g}",
            "observed": _num(g["observed"]),
            "use": g.get("use", "point"),
            "group": g.get("group") or "",
            "passed": bool(g["passed"]),
            "note": g.get("note") or "",
        }
        for g in report.get("gates") or []
    ]


def _attribute(
    index: int, name: str, block: dict[str, Any], report: dict[str, Any], min_size: int | None
) -> dict[str, Any]:
    metrics = report["metrics"]
    groups = [
        {
            "name": group,
            "n": entry["n"],
            "small": bool(entry["small"]),
            "cells": [_cell(entry.get(m)) for m in metrics],
        }
        for group, entry in block["groups"].items()
    ]
    disparity = block["disparity"]
    disparities = []
    for metric in metrics:
        entry = disparity.get(metric) or {}
        disparities.append(
            {
                "metric": metric,
                "difference": _num(entry.get("difference")),
                "difference_ci": _ci(entry.get("difference_ci")),
                "ratio": _num(entry.get("ratio")),
                "ratio_ci": _ci(entry.get("ratio_ci")),
                "worst": entry.get("worst_group") or NA,
                "best": entry.get("best_group") or NA,
                "compared": entry.get("groups_compared", ""),
            }
        )
    odds = disparity.get(EQUALIZED_ODDS)
    tests = [
        {
            "metric": metric,
            "test": t.get("test") or NA,
            "groups": f"{t['worst_group']} vs {t['best_group']}" if t.get("test") else NA,
            "p": _num(t.get("p_value"), 4),
            "p_holm": _num(t.get("p_value_holm"), 4),
            "significant": {True: "yes", False: "no", None: NA}[t.get("significant")],
        }
        for metric, t in (block.get("significance") or {}).items()
    ]
    plot = attribute_figure(name, block, metrics, report["overall"], min_group_size=min_size)
    return {
        "anchor": f"attribute-{index}",
        "name": name,
        "plot": _data_url(plot),
        "groups": groups,
        "any_small": any(g["small"] for g in groups),
        "disparities": disparities,
        "odds": None if odds is None else _cell(odds),
        "tests": tests,
    }


def render_html(
    report: dict[str, Any],
    *,
    base_dir: Path | None = None,
    rendered_at: datetime | None = None,
) -> str:
    """The report as one self-contained HTML page.

    Args:
        report: the report.json structure.
        base_dir: the folder the page is written to; links to local files
            (the model manifest) are made relative to it. ``None``: no links.
        rendered_at: the timestamp printed in the footer (default: now, UTC).

    Returns:
        The HTML text.
    """
    args = (report.get("manifest") or {}).get("args") or {}
    min_size = args.get("min_group_size")
    metrics = report["metrics"]
    info = {name: _metric_info(name) for name in metrics}
    overall = [
        {
            "metric": m,
            **_cell(report["overall"].get(m)),
            "better": "higher" if info[m][1] else "lower",
            "description": info[m][0],
        }
        for m in metrics
    ]
    attributes = [
        _attribute(i, name, block, report, min_size)
        for i, (name, block) in enumerate(report["by_attribute"].items())
    ]
    overview = disparity_figure(report)
    from jinja2 import Environment  # imported here: the CLI imports this module at start

    environment = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(TEMPLATE)
    stamp = (rendered_at or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    return template.render(
        header=_header(report, base_dir),
        gates=_gates(report),
        metrics=metrics,
        overall=overall,
        overview=None if overview is None else _data_url(overview),
        attributes=attributes,
        notes=report.get("notes") or [],
        lower_better=[m for m in metrics if not info[m][1]],
        confidence=args.get("confidence"),
        rendered_at=stamp,
    )


def write_html(report: dict[str, Any], out_dir: Path) -> Path:
    """Write ``report.html`` into ``out_dir``.

    Returns:
        The file written.
    """
    path = out_dir / REPORT_HTML
    path.write_text(render_html(report, base_dir=out_dir), encoding="utf-8")
    return path
