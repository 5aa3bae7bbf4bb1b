"""``clinical-llm eval run``: a suite of evaluation tasks on a model folder or an endpoint.

Registered on the ``eval`` group by :mod:`llm.cli.eval`. The work is done by
:mod:`eval.run` (planning, running, reports); this module parses options and
prints. Heavy imports (torch, transformers, httpx) happen inside the command so
``clinical-llm --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from eval.runners.base import RunnerOptions
from llm.cli.common import err_console, out_console, print_read_stats, print_summary, track
from llm.data.io import ReadStats
from llm.errors import CheckFailedError


def _progress(items: Iterable[Any], total: int | None, description: str) -> Iterable[Any]:
    return track(items, description=description, total=total)


def _report_task(entry: dict[str, Any], stats: ReadStats | None) -> None:
    if stats is not None:
        print_read_stats(stats)
    if entry["status"] == "skipped":
        err_console.print(f"{entry['task']}: skipped: {entry['reason']}", highlight=False)
    else:
        invalid = "" if entry["invalid"] is None else f", {entry['invalid']} invalid"
        err_console.print(
            f"{entry['task']}: {entry['n']} examples in {entry['seconds']:.1f} s"
            f"{invalid}, {entry['truncated_prompts']} prompt(s) truncated",
            highlight=False,
        )


def _update_model_card(model: str | None, out: Path) -> Path | None:
    """Rewrite the model card of an evaluated export folder (None: the model is not one)."""
    from llm.export.card import update_card_evaluation
    from llm.export.folder import EXPORT_KIND
    from llm.files import read_json_object

    manifest = Path(model) / "manifest.json" if model is not None else None
    if manifest is None or not manifest.is_file():
        return None
    if read_json_object(manifest, what="model manifest").get("kind") != EXPORT_KIND:
        return None
    return update_card_evaluation(manifest.parent, out)


def _help(name: str) -> str:
    # the runner options' field descriptions are the one source of the help text
    return RunnerOptions.model_fields[name].description or ""


def _default(name: str) -> Any:
    return RunnerOptions.model_fields[name].default


def run(
    suite: Path = typer.Argument(
        ..., help="Suite file (YAML): tasks, dataset_dir, attributes, gates, bootstrap."
    ),
    model: str | None = typer.Option(_default("model"), "--model", help=_help("model")),
    endpoint: str | None = typer.Option(_default("endpoint"), "--endpoint", help=_help("endpoint")),
    runner: str | None = typer.Option(_default("runner"), "--runner", help=_help("runner")),
    model_name: str | None = typer.Option(
        _default("model_name"), "--model-name", help=_help("model_name")
    ),
    api_key_env: str | None = typer.Option(
        _default("api_key_env"), "--api-key-env", help=_help("api_key_env")
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Evaluate only the first N examples of every task."
    ),
    concurrency: int = typer.Option(
        _default("concurrency"), "--concurrency", min=1, help=_help("concurrency")
    ),
    batch_size: int = typer.Option(
        _default("batch_size"), "--batch-size", min=1, help=_help("batch_size")
    ),
    ray_address: str | None = typer.Option(
        _default("ray_address"), "--ray-address", help=_help("ray_address")
    ),
    workers: int = typer.Option(_default("workers"), "--workers", min=1, help=_help("workers")),
    cpus_per_worker: int = typer.Option(
        _default("cpus_per_worker"), "--cpus-per-worker", min=1, help=_help("cpus_per_worker")
    ),
    gpus_per_worker: float = typer.Option(
        _default("gpus_per_worker"), "--gpus-per-worker", min=0, help=_help("gpus_per_worker")
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="Override a suite setting, key=value (repeatable): dataset_dir=build/demo/datasets, "
        "bootstrap=0, min_group_size=5, split=validation.",
    ),
    prediction_text: bool = typer.Option(
        True,
        "--prediction-text/--no-prediction-text",
        help="Keep model output and reference text in <task>/predictions.jsonl (sensitive: "
        "text from patient records). --no-prediction-text keeps ids, labels, scores and "
        "correctness only.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output folder: <task>/ predictions and reports, summary.json, "
        "manifest.json. Must be new, empty or an earlier eval run (replaced).",
    ),
) -> None:
    """Run a suite of tasks on a model and score every task by subgroup.

    Writes <out>/<task>/predictions.jsonl, report.json, report.md (per task),
    summary.json and manifest.json, and prints a table. When --model is an export
    folder, its model card's evaluation section (README.md) is rewritten from this
    run, failed gates included. With --ray-address the local runner runs on
    --workers Ray Data actors, each loading the model; the predictions and
    reports are those of one process. Exit 0 when every gate
    passes (or none are set), 1 when a gate fails (after writing everything),
    2 on bad input (suite, task or gates file, dataset, model, endpoint).
    """
    from rich.table import Table

    from eval.run import plan_suite, prepare_out, run_suite, summary_rows
    from eval.runners import RUNNERS, make_runner, runner_kind
    from eval.tasks.suite import load_suite

    loaded = load_suite(suite, overrides)
    kind = runner_kind(runner=runner, endpoint=endpoint)
    runner_class = RUNNERS.get(kind)
    plans = plan_suite(
        loaded,
        runner_kind=kind,
        images=runner_class.supports_images,
        loglikelihood=runner_class.supports_loglikelihood,
        limit=limit,
    )
    model_runner = make_runner(
        model=model,
        endpoint=endpoint,
        runner=kind,
        model_name=model_name,
        api_key_env=api_key_env,
        batch_size=batch_size,
        concurrency=concurrency,
        seed=loaded.seed,
        ray_address=ray_address,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
    )
    model_manifest = Path(model) / "manifest.json" if model is not None else None
    try:
        prepare_out(out)
        result = run_suite(
            loaded,
            suite,
            plans,
            model_runner,
            out,
            overrides=overrides,
            model_manifest=model_manifest if model_manifest and model_manifest.is_file() else None,
            progress=_progress,
            on_task=_report_task,
            prediction_text=prediction_text,
        )
    finally:
        model_runner.close()
    table = Table(title=f"suite {loaded.suite}")
    for column in ("task", "n", f"metrics ({loaded.confidence:.0%} CI)", "invalid", "gates"):
        table.add_column(column)
    for row in summary_rows(result.summary):
        table.add_row(*row)
    out_console.print(table)
    summary = result.summary
    failing = {
        e["task"]: len(e["gates"]["failed"])
        for e in summary["tasks"]
        if e["status"] == "ok" and e["gates"]["failed"]
    }
    gates_note = f"; {sum(failing.values())} gate(s) failed" if failing else ""
    print_summary(
        f"{summary['tasks_run']} task(s) run, {summary['tasks_skipped']} skipped{gates_note}: "
        f"outputs in {out}/ (summary.json, manifest.json, <task>/report.json)"
    )
    card = _update_model_card(model, out)
    if card is not None:
        err_console.print(f"model card evaluation section updated: {card}", highlight=False)
    if failing:
        tasks = ", ".join(f"{task} ({n})" for task, n in failing.items())
        raise CheckFailedError(
            f"gate(s) failed in {tasks}; see {out}/summary.json and <task>/report.md"
        )
