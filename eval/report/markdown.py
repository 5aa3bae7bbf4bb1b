"""``report.md``: a readable summary of a subgroup report."""

from __future__ import annotations

from eval.report.model import AttributeReport, GateResult, Interval, ReportValue, SubgroupReport

NA = "n/a"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _num(value: float | None, digits: int = 3) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _with_ci(value: float | None, ci: Interval | None) -> str:
    if value is None:
        return NA
    if ci is None:
        return _num(value)
    return f"{_num(value)} [{_num(ci[0])}, {_num(ci[1])}]"


def _value(entry: ReportValue) -> str:
    return _with_ci(entry.value, entry.ci)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _header(report: SubgroupReport) -> list[str]:
    args = report.manifest.args
    verdict = "PASSED" if report.passed else "FAILED"
    lines = ["# Subgroup report", ""]
    if args.predictions:
        lines.append(f"- predictions: `{args.predictions}`")
    lines += [
        f"- examples: {report.n}",
        f"- positive label: {report.positive_label if report.positive_label else NA}",
        f"- metrics: {', '.join(report.metrics)}",
    ]
    if args.model_fields_set or args.model_extra:
        lines.append(
            f"- bootstrap: {args.bootstrap} resamples, "
            f"{args.confidence} percentile intervals (seed {args.seed}); "
            f"groups under {args.min_group_size} examples are small"
        )
    lines += [f"- gates: **{verdict}**", ""]
    return lines


def _gates(report: SubgroupReport) -> list[str]:
    if not report.gates:
        return ["## Gates", "", "No gates were given.", ""]
    rows = [
        [
            g.name,
            g.attribute or "overall",
            g.metric,
            g.rule,
            f"{g.threshold:g}",
            f"{_num(g.observed)} ({_how(g)}{', ' + g.group if g.group else ''})",
            _result(g),
        ]
        for g in report.gates
    ]
    header = ["gate", "attribute", "metric", "rule", "threshold", "observed", "result"]
    lines = ["## Gates", "", *_table(header, rows)]
    notes = [f"- {g.name} ({g.attribute or 'overall'}): {g.note}" for g in report.gates if g.note]
    if notes:
        lines += ["Gate notes:", "", *notes, ""]
    left_out = [
        f"- {g.name} ({g.attribute}): {_num(g.excluded_share)} of the examples left out: "
        + ", ".join(f"{e.group} (n={e.n}, {e.reason})" for e in g.excluded)
        for g in report.gates
        if g.excluded
    ]
    if left_out:
        lines += ["Groups the gates did not compare:", "", *left_out, ""]
    return lines


def _how(gate: GateResult) -> str:
    return "judge ci" if gate.judge == "ci" else gate.use


def _result(gate: GateResult) -> str:
    if gate.passed:
        return "PASS (insufficient data, allowed)" if gate.insufficient_data else "PASS"
    return "**INSUFFICIENT DATA**" if gate.insufficient_data else "**FAIL**"


def _attribute(name: str, block: AttributeReport, metrics: list[str]) -> list[str]:
    lines = [f"## {name}", ""]
    rows = []
    for group, entry in block.groups.items():
        label = f"{group} (small)" if entry.small else group
        values = [_value(entry.metrics[m]) for m in metrics]
        rows.append([label, str(entry.n), *values])
    lines += _table(["group", "n", *metrics], rows)
    rows = [
        [
            m,
            _with_ci(gap.difference, gap.difference_ci),
            _with_ci(gap.ratio, gap.ratio_ci),
            gap.worst_group or NA,
            gap.best_group or NA,
        ]
        for m in metrics
        for gap in [block.disparity[m]]
    ]
    lines += ["Disparities between groups that are not small:", ""]
    lines += _table(
        ["metric", "difference (max - min)", "ratio (min / max)", "worst", "best"], rows
    )
    if block.equalized_odds is not None:
        lines += [f"Equalized odds difference: {_value(block.equalized_odds)}", ""]
    if block.significance:
        rows = [
            [
                m,
                t.test or NA,
                f"{t.worst_group} vs {t.best_group}" if t.test else NA,
                _num(t.p_value, 4),
                _num(t.p_value_holm, 4),
                {True: "yes", False: "no", None: NA}[t.significant],
            ]
            for m, t in block.significance.items()
        ]
        lines += ["Worst-versus-best gap tests (Holm-adjusted across attributes):", ""]
        lines += _table(["metric", "test", "groups", "p", "p (Holm)", "significant"], rows)
    return lines


def render_markdown(report: SubgroupReport) -> str:
    """Markdown summary: header, gates, overall table, one section per attribute, notes."""
    metrics = report.metrics
    lines = _header(report) + _gates(report)
    lines += ["## Overall", ""]
    lines += _table(["metric", "value [CI]"], [[m, _value(report.overall[m])] for m in metrics])
    for name, block in report.by_attribute.items():
        lines += _attribute(name, block, metrics)
    if report.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in report.notes], ""]
    return "\n".join(lines)
