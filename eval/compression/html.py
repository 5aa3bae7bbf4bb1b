"""``report.html`` of a compression report: the summary table, the gate, and two figures per
task (changes per subgroup, the accuracy-size frontier; :mod:`eval.compression.plots`), as
one self-contained file (figures inlined as data URLs)."""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment

from eval.compression.plots import changes_figure, frontier_figure
from eval.compression.report import CompressionReport, runtime_name

REPORT_HTML = "report.html"

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Compression report: {{ suite }}</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:auto}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.fail{color:#D55E00;font-weight:bold}</style>
</head><body>
<h1>Compression report: suite {{ suite }}</h1>
<p>Changes are variant minus the uncompressed model, in points of accuracy, with paired
bootstrap {{ level }} intervals. Groups under {{ min_group }} examples are small and not gated.
Gate: no subgroup may lose more than {{ margin }} points (judged on <code>{{ judge }}</code>).
Speed: batch 1, greedy, all models timed side by side in one run. Peak memory: resident set
of a process that loads the model and generates.</p>
<table><tr><th>model</th><th>runtime</th><th>weights (MB)</th><th>size ×</th>
<th>peak memory (MB)</th><th>tokens/s</th><th>speed ×</th><th>first token (ms)</th>
<th>gate</th></tr>
{% for row in rows %}<tr><td>{{ row.name }}</td><td>{{ row.runtime }}</td><td>{{ row.mb }}</td>
<td>{{ row.size }}</td><td>{{ row.peak }}</td><td>{{ row.tps }}</td><td>{{ row.speedup }}</td>
<td>{{ row.first }}</td>
<td class="{{ 'fail' if row.failed else '' }}">{{ row.gate }}</td></tr>{% endfor %}
</table>
{% for v in failures %}<h3>{{ v.name }}: failed</h3><ul>
{% for f in v.lines %}<li>{{ f }}</li>{% endfor %}</ul>{% endfor %}
{% for t in tasks %}<h2>{{ t.task }}</h2>
<img alt="{{ t.task }}: change per subgroup" src="{{ t.changes }}">
<img alt="{{ t.task }}: accuracy-size frontier" src="{{ t.frontier }}">{% endfor %}
</body></html>
"""


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(report: CompressionReport) -> str:
    """The report as one self-contained HTML page."""
    base = report.base_speed
    rows: list[dict[str, str | bool]] = [
        {
            "name": "base",
            "runtime": runtime_name(report.base_runtime),
            "mb": f"{report.base_weights_bytes / 1e6:.1f}",
            "size": "1.00",
            "peak": f"{report.base_memory.peak_rss_bytes / 1e6:.0f}",
            "tps": f"{base.tokens_per_s:.1f}",
            "speedup": "1.00",
            "first": f"{1000 * base.first_token_s:.0f}",
            "gate": "",
            "failed": False,
        }
    ]
    for v in report.variants:
        rows.append(
            {
                "name": v.name,
                "runtime": runtime_name(v.runtime),
                "mb": f"{v.weights_bytes / 1e6:.1f}",
                "size": f"{v.weights_bytes / report.base_weights_bytes:.2f}",
                "peak": f"{v.memory.peak_rss_bytes / 1e6:.0f}",
                "tps": f"{v.speed.tokens_per_s:.1f}",
                "speedup": f"{v.speed.tokens_per_s / base.tokens_per_s:.2f}",
                "first": f"{1000 * v.speed.first_token_s:.0f}",
                "gate": v.gate.verdict(),
                "failed": not v.gate.passed,
            }
        )
    gate = report.variants[0].gate if report.variants else None
    tasks = []
    if report.variants:
        for index, task in enumerate(report.variants[0].tasks):
            margin = gate.margin if gate is not None else 0.0
            tasks.append(
                {
                    "task": task.task,
                    "changes": _data_url(changes_figure(report, index, margin)),
                    "frontier": _data_url(frontier_figure(report, index)),
                }
            )
    failures = [
        {
            "name": v.name,
            "lines": [f"{f.task}: {f.attribute}={f.group}: {f.reason}" for f in v.gate.failures],
        }
        for v in report.variants
        if not v.gate.passed
    ]
    environment = Environment(autoescape=True)
    return environment.from_string(TEMPLATE).render(
        suite=report.suite,
        level=f"{report.confidence:.0%}",
        min_group=report.min_group_size,
        margin=f"{100 * gate.margin:g}" if gate is not None else "",
        judge=gate.judge if gate is not None else "",
        rows=rows,
        failures=failures,
        tasks=tasks,
    )


def write_html(report: CompressionReport, out: Path) -> Path:
    """Write ``out/report.html``. Returns its path."""
    path = out / REPORT_HTML
    path.write_text(render_html(report), encoding="utf-8")
    return path
