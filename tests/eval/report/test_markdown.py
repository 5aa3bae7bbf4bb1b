"""report.md (and report.html) show a gate's verdict and every group it left out, with why."""

from __future__ import annotations

from pathlib import Path

from eval.gates import evaluate_gates, load_gates
from eval.report.html import render_html
from eval.report.markdown import render_markdown
from tests.eval.test_gates import GAP, _intersection_report


def test_insufficient_data_and_left_out_groups_are_shown(tmp_path: Path) -> None:
    report = _intersection_report()
    path = tmp_path / "gates.yaml"
    path.write_text(GAP + ", required_groups: ['race_ethnicity=Black']}\n", encoding="utf-8")
    report.gates = evaluate_gates(load_gates(path), report)
    report.passed = False
    markdown = render_markdown(report)
    assert "| 0.059 (point) | **INSUFFICIENT DATA** |" in markdown
    assert "required group race_ethnicity=Black left out (female*Black, male*Black)" in markdown
    assert "female*Black (n=7, small (n < 10))" in markdown
    assert "0.189 of the examples left out" in markdown
    page = render_html(report)
    assert "INSUFFICIENT DATA" in page
    assert "female*Black (n=7, small (n &lt; 10))" in page
