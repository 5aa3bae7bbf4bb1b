"""``clinical-llm eval …``: subgroup metrics, fairness gaps and release gates on predictions."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from eval.report.compare import MAX_REGRESSION
from eval.subgroups.analysis import SubgroupConfig, analyze_subgroups, make_config, split_list
from llm.cli.common import print_read_stats, print_summary, track
from llm.cli.eval_run import run as run_suite_command
from llm.data.io import ReadStats
from llm.errors import CheckFailedError, RecordError

if TYPE_CHECKING:
    from eval.report.compare import Comparison

eval_app = typer.Typer(
    help="Evaluate predictions: subgroup metrics with intervals, disparities, gates.",
    no_args_is_help=True,
)
# `eval run` (a suite of tasks on a model or endpoint) lives in llm/cli/eval_run.py
eval_app.command("run")(run_suite_command)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` sub-command group to the root app."""
    app.add_typer(eval_app, name="eval")


def _help(name: str) -> str:
    # the config model's field descriptions are the one source of the help text
    return SubgroupConfig.model_fields[name].description or ""


def _default(name: str) -> Any:
    """The config model's default of ``name``; a list as the comma-separated text the CLI takes."""
    default = SubgroupConfig.model_fields[name].default
    return ",".join(default) if isinstance(default, list) else default


def _progress(items: Iterable[Any], total: int | None, description: str) -> Iterable[Any]:
    return track(items, description=description, total=total)


@eval_app.command("subgroups")
def subgroups(
    predictions: Path = typer.Argument(..., help=_help("predictions")),
    attributes: str = typer.Option(..., "--attributes", help=_help("attributes")),
    metrics: str = typer.Option(_default("metrics"), "--metrics", help=_help("metrics")),
    positive_label: str | None = typer.Option(
        _default("positive_label"), "--positive-label", help=_help("positive_label")
    ),
    min_group_size: int = typer.Option(
        _default("min_group_size"), "--min-group-size", help=_help("min_group_size")
    ),
    bootstrap: int = typer.Option(_default("bootstrap"), "--bootstrap", help=_help("bootstrap")),
    seed: int = typer.Option(_default("seed"), "--seed", help=_help("seed")),
    confidence: float = typer.Option(
        _default("confidence"), "--confidence", help=_help("confidence")
    ),
    gates: Path | None = typer.Option(_default("gates"), "--gates", help=_help("gates")),
    significance: bool = typer.Option(
        _default("significance"), "--significance", help=_help("significance")
    ),
    permutations: int = typer.Option(
        _default("permutations"), "--permutations", help=_help("permutations")
    ),
    model_manifest: Path | None = typer.Option(
        _default("model_manifest"), "--model-manifest", help=_help("model_manifest")
    ),
    rejects: Path | None = typer.Option(_default("rejects"), "--rejects", help=_help("rejects")),
    out: Path = typer.Option(..., "--out", help=_help("out")),
) -> None:
    """Metrics overall and per subgroup with bootstrap intervals, disparities and gates.

    Writes report.json, report.md and manifest.json to --out. Exit 0 when every
    gate passes, 1 when a gate fails (after writing the reports), 2 on bad input.
    """
    config = make_config(
        predictions=predictions,
        attributes=split_list(attributes),
        metrics=split_list(metrics),
        positive_label=positive_label,
        min_group_size=min_group_size,
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
        gates=gates,
        significance=significance,
        permutations=permutations,
        model_manifest=model_manifest,
        rejects=rejects,
        out=out,
    )
    stats = ReadStats(str(predictions))
    try:
        result = analyze_subgroups(config, stats=stats, progress=_progress)
    except RecordError as err:
        if err.path == stats.path:  # a bad predictions line, not a bad gates entry
            print_read_stats(stats)
        raise
    print_read_stats(stats)
    report = result.report
    failed = [g.name for g in report.failed_gates]
    gates_note = (
        f"; gates: {len(failed)} of {len(report.gates)} failed"
        if failed
        else (f"; all {len(report.gates)} gates passed" if report.gates else "")
    )
    print_summary(
        f"{report.n} predictions, {len(config.attributes)} attribute(s){gates_note}: "
        f"reports in {out}/ (report.json, report.md, report.html)"
    )
    if failed:
        raise CheckFailedError(f"gate(s) failed: {', '.join(failed)} (see {out}/report.md)")


MAX_ROWS_SHOWN = 20


@eval_app.command("compare")
def compare(
    base: Path = typer.Argument(
        ..., help="report.json of the reference model (or its eval output folder)."
    ),
    new: Path = typer.Argument(
        ..., help="report.json of the candidate model (or its eval output folder)."
    ),
    max_regression: float = typer.Option(
        MAX_REGRESSION,
        "--max-regression",
        help="Largest tolerated worsening of a value, absolute (0.02 = 2 points of accuracy).",
    ),
    metrics: str | None = typer.Option(
        None,
        "--metrics",
        help="Metrics to compare, comma-separated (default: all; the reports must then "
        "have the same ones).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for compare.json and compare.md (default: print only)."
    ),
) -> None:
    """Compare two subgroup reports: a regression gate between model versions.

    Exit 1 when a value of a group that is not small (overall, per group, or a gap
    between groups) got worse by more than --max-regression with disjoint intervals;
    0 otherwise; 2 on bad input (unreadable report, different metrics or attributes).
    """
    from eval.report.compare import compare_reports, load_report
    from eval.report.write import write_comparison

    comparison = compare_reports(
        load_report(base, "BASE"),
        load_report(new, "NEW"),
        max_regression=max_regression,
        metrics=split_list(metrics) if metrics is not None else None,
        base_name=str(base),
        new_name=str(new),
    )
    _print_comparison(comparison, written=out is not None)
    files = write_comparison(comparison, out) if out is not None else []
    regressions = comparison.regressions
    where = f": {out}/ (compare.json, compare.md)" if files else " (no --out: nothing written)"
    verdict = f"{len(regressions)} regression(s)" if regressions else "no regression"
    print_summary(
        f"compared {len(comparison.changes)} values of {len(comparison.metrics)} metric(s), "
        f"{verdict}{where}"
    )
    if regressions:
        raise CheckFailedError(
            f"{len(regressions)} value(s) worse by more than {max_regression:g} "
            "outside the intervals"
        )


def _print_comparison(comparison: Comparison, *, written: bool) -> None:
    from rich.table import Table

    from eval.report.compare_markdown import (
        change_text,
        clear_improvements,
        intervals_text,
        value_with_ci,
        worse_within_noise,
    )
    from llm.cli.common import out_console

    sections = [
        ("Regressions", comparison.regressions, "red"),
        ("Worse, but within the intervals or in small groups", worse_within_noise(comparison), ""),
        ("Clear improvements", clear_improvements(comparison), "green"),
    ]
    for title, changes, style in sections:
        if not changes:
            out_console.print(f"{title}: none", highlight=False)
            continue
        table = Table(title=f"{title} ({len(changes)})", title_style=f"bold {style}".strip())
        # fold, never cut: a CI log is often 80 columns wide and group names must stay whole
        for column in ("where", "metric", "base [CI]", "new [CI]", "change", "intervals"):
            table.add_column(
                column, overflow="fold", justify="left" if column == "where" else "right"
            )
        for change in changes[:MAX_ROWS_SHOWN]:
            table.add_row(
                change.where + (" (small)" if change.small else ""),
                change.metric,
                value_with_ci(change.base, change.base_ci),
                value_with_ci(change.new, change.new_ci),
                change_text(change),
                intervals_text(change),
                style=style or None,
            )
        out_console.print(table)
        if len(changes) > MAX_ROWS_SHOWN:
            where = "see compare.md" if written else "--out writes them all to compare.md"
            out_console.print(f"… {len(changes) - MAX_ROWS_SHOWN} more ({where})", highlight=False)
    for note in comparison.notes:
        out_console.print(f"note: {note}", highlight=False)
