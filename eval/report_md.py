"""``report.md``: a readable summary of a subgroup report (from its report.json structure)."""

from __future__ import annotations

from typing import Any

NA = "n/a"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _num(value: float | None, digits: int = 3) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return NA
    if ci is None:
        return _num(value)
    return f"{_num(value)} [{_num(ci[0])}, {_num(ci[1])}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _header(report: dict[str, Any]) -> list[str]:
    args = report.get("manifest", {}).get("args", {})
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = ["# Subgroup report", ""]
    if args.get("predictions"):
        lines.append(f"- predictions: `{args['predictions']}`")
    lines += [
        f"- examples: {report['n']}",
        f"- positive label: {report['positive_label'] if report['positive_label'] else NA}",
        f"- metrics: {', '.join(report['metrics'])}",
    ]
    if args:
        lines.append(
            f"- bootstrap: {args.get('bootstrap')} resamples, "
            f"{args.get('confidence')} percentile intervals (seed {args.get('seed')}); "
            f"groups under {args.get('min_group_size')} examples are small"
        )
    lines += [f"- gates: **{verdict}**", ""]
    return lines


def _gates(report: dict[str, Any]) -> list[str]:
    if not report["gates"]:
        return ["## Gates", "", "No gates were given.", ""]
    rows = [
        [
            g["name"],
            g["attribute"] or "overall",
            g["metric"],
            g["rule"],
            f"{g['threshold']:g}",
            f"{_num(g['observed'])} ({g['use']}{', ' + g['group'] if g.get('group') else ''})",
            "PASS" if g["passed"] else "**FAIL**",
        ]
        for g in report["gates"]
    ]
    header = ["gate", "attribute", "metric", "rule", "threshold", "observed", "result"]
    return ["## Gates", "", *_table(header, rows)]


def _attribute(name: str, block: dict[str, Any], metrics: list[str]) -> list[str]:
    lines = [f"## {name}", ""]
    rows = []
    for group, entry in block["groups"].items():
        label = f"{group} (small)" if entry["small"] else group
        values = [_with_ci(entry[m]["value"], entry[m]["ci"]) for m in metrics]
        rows.append([label, str(entry["n"]), *values])
    lines += _table(["group", "n", *metrics], rows)
    disparity = block["disparity"]
    rows = [
        [
            m,
            _with_ci(disparity[m]["difference"], disparity[m]["difference_ci"]),
            _with_ci(disparity[m]["ratio"], disparity[m]["ratio_ci"]),
            disparity[m]["worst_group"] or NA,
            disparity[m]["best_group"] or NA,
        ]
        for m in metrics
    ]
    lines += ["Disparities between groups that are not small:", ""]
    lines += _table(
        ["metric", "difference (max - min)", "ratio (min / max)", "worst", "best"], rows
    )
    odds = disparity.get("equalized_odds_difference")
    if odds is not None:
        lines += [f"Equalized odds difference: {_with_ci(odds['value'], odds['ci'])}", ""]
    tests = block.get("significance")
    if tests:
        rows = [
            [
                m,
                t["test"] or NA,
                f"{t['worst_group']} vs {t['best_group']}" if t["test"] else NA,
                _num(t["p_value"], 4),
                _num(t["p_value_holm"], 4),
                {True: "yes", False: "no", None: NA}[t["significant"]],
            ]
            for m, t in tests.items()
        ]
        lines += ["Worst-versus-best gap tests (Holm-adjusted across attributes):", ""]
        lines += _table(["metric", "test", "groups", "p", "p (Holm)", "significant"], rows)
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """Markdown summary: header, gates, overall table, one section per attribute, notes."""
    metrics = report["metrics"]
    lines = _header(report) + _gates(report)
    lines += ["## Overall", ""]
    lines += _table(
        ["metric", "value [CI]"],
        [[m, _with_ci(report["overall"][m]["value"], report["overall"][m]["ci"])] for m in metrics],
    )
    for name, block in report["by_attribute"].items():
        lines += _attribute(name, block, metrics)
    if report.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in report["notes"]], ""]
    return "\n".join(lines)
