"""``clinical-llm eval …``: subgroup metrics, fairness gaps and release gates on predictions."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from eval.analysis import SubgroupConfig, analyze_subgroups, make_config, split_list
from llm.cli.common import print_read_stats, print_summary, track
from llm.data.io import ReadStats
from llm.errors import CheckFailedError, RecordError

eval_app = typer.Typer(
    help="Evaluate predictions: subgroup metrics with intervals, disparities, gates.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` sub-command group to the root app."""
    app.add_typer(eval_app, name="eval")


def _help(name: str) -> str:
    # the config model's field descriptions are the one source of the help text
    return SubgroupConfig.model_fields[name].description or ""


def _progress(items: Iterable[Any], total: int | None, description: str) -> Iterable[Any]:
    return track(items, description=description, total=total)


@eval_app.command("subgroups")
def subgroups(
    predictions: Path = typer.Argument(..., help=_help("predictions")),
    attributes: str = typer.Option(..., "--attributes", help=_help("attributes")),
    metrics: str = typer.Option("accuracy", "--metrics", help=_help("metrics")),
    positive_label: str | None = typer.Option(
        None, "--positive-label", help=_help("positive_label")
    ),
    min_group_size: int = typer.Option(30, "--min-group-size", help=_help("min_group_size")),
    bootstrap: int = typer.Option(1000, "--bootstrap", help=_help("bootstrap")),
    seed: int = typer.Option(0, "--seed", help=_help("seed")),
    confidence: float = typer.Option(0.95, "--confidence", help=_help("confidence")),
    gates: Path | None = typer.Option(None, "--gates", help=_help("gates")),
    significance: bool = typer.Option(False, "--significance", help=_help("significance")),
    permutations: int = typer.Option(1000, "--permutations", help=_help("permutations")),
    model_manifest: Path | None = typer.Option(
        None, "--model-manifest", help=_help("model_manifest")
    ),
    rejects: Path | None = typer.Option(None, "--rejects", help=_help("rejects")),
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
    failed = [g["name"] for g in result.report["gates"] if not g["passed"]]
    gates_note = (
        f"; gates: {len(failed)} of {len(result.report['gates'])} failed"
        if failed
        else (f"; all {len(result.report['gates'])} gates passed" if result.report["gates"] else "")
    )
    print_summary(
        f"{result.report['n']} predictions, {len(config.attributes)} attribute(s){gates_note}: "
        f"reports in {out}/ (report.json, report.md)"
    )
    if failed:
        raise CheckFailedError(f"gate(s) failed: {', '.join(failed)} (see {out}/report.md)")
