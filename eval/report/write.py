"""Writing a report folder: ``report.json``, ``report.md``, ``report.html``; and a comparison.

:func:`write_reports` is the one place that renders a
:class:`~eval.report.model.SubgroupReport` into files (json, markdown and a
self-contained html page); :func:`write_comparison` writes ``compare.json``
and ``compare.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.report.compare import COMPARE_JSON, COMPARE_MD, Comparison
from eval.report.compare_markdown import render_comparison_markdown
from eval.report.html import write_html
from eval.report.markdown import render_markdown
from eval.report.model import REPORT_JSON, SubgroupReport
from llm.errors import BadInputError

REPORT_MD = "report.md"


def write_reports(report: SubgroupReport, out_dir: Path) -> list[Path]:
    """Write every rendering of ``report`` into ``out_dir`` (created when missing).

    Returns:
        The files written: ``report.json``, ``report.md`` and ``report.html``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / REPORT_JSON
    json_path.write_text(report.to_json_text(), encoding="utf-8")
    md_path = out_dir / REPORT_MD
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return [json_path, md_path, write_html(report, out_dir)]


def write_comparison(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write ``compare.json`` and ``compare.md`` into ``out_dir`` (created when missing).

    Returns:
        The files written.

    Raises:
        BadInputError: ``out_dir`` exists and is not a folder.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"--out {out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / COMPARE_JSON
    json_path.write_text(
        json.dumps(comparison.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    md_path = out_dir / COMPARE_MD
    md_path.write_text(render_comparison_markdown(comparison), encoding="utf-8")
    return [json_path, md_path]
