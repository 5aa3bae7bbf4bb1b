"""``clinical-llm demo``: the main job end to end on the embedded defaults.

The demo runs the same CLI verbs a user would type, and prints each one first,
so it doubles as a walkthrough. Until the training, evaluation and serving
stages land, it runs the data layer: synthesise a cohort (with a documentation
bias against one subgroup, so later fairness checks have something real to
find), validate it, de-identify it and score the de-identification, and build
the task datasets.
"""

from __future__ import annotations

import secrets
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import typer

from llm.cli.common import err_console, print_summary
from llm.errors import CheckFailedError

DEMO_TASKS = "diagnosis,readmission,summary,radiology_impression,ecg_rhythm"


def demo_steps(out: Path, patients: int, seed: int) -> list[list[str]]:
    """The CLI commands the demo runs, in order (without the program name)."""
    cohort, deid, datasets = out / "cohort", out / "deid", out / "datasets"
    return [
        ["data", "synth", "--patients", str(patients), "--seed", str(seed),
         "--bias", "race_ethnicity=Black:0.3", "--out", str(cohort)],
        ["data", "validate", str(cohort / "records.jsonl")],
        ["data", "deid", str(cohort / "records.jsonl"), str(deid / "records.jsonl"),
         "--strategy", "surrogate", "--key-file", str(out / "deid.key"), "--evaluate"],
        ["data", "build", "--records", str(deid / "records.jsonl"), "--tasks", DEMO_TASKS,
         "--seed", str(seed), "--out", str(datasets)],
    ]  # fmt: skip


def run_demo(out: Path, patients: int, seed: int, run: Callable[[list[str]], int]) -> float:
    """Run every demo step through ``run`` (the CLI's ``main``); stop at the first failure.

    Returns:
        Wall-clock seconds the demo took.

    Raises:
        CheckFailedError: a step exited non-zero.
    """
    out.mkdir(parents=True, exist_ok=True)
    key = out / "deid.key"
    if not key.exists():
        # A per-demo secret for date shifting; real deployments keep theirs in a vault.
        key.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        key.chmod(0o600)
    started = time.perf_counter()
    steps = demo_steps(out, patients, seed)
    for i, argv in enumerate(steps, start=1):
        err_console.rule(f"[bold]step {i}/{len(steps)}")
        err_console.print(f"$ clinical-llm {shlex.join(argv)}", highlight=False, soft_wrap=True)
        code = run(argv)
        if code != 0:
            raise CheckFailedError(
                f"demo step {i} failed with exit code {code}: {shlex.join(argv)}"
            )
    return time.perf_counter() - started


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    out: Path = typer.Option(Path("build/demo"), "--out", help="Folder for every demo output."),
    patients: int = typer.Option(300, "--patients", min=10, help="Size of the synthetic cohort."),
    seed: int = typer.Option(7, "--seed", help="Seed for the cohort and the dataset splits."),
) -> None:
    """Run the main job end to end on the embedded defaults (today: the data layer).

    Training, evaluation and serving join the demo as those stages land.
    """
    from llm.cli import main  # the demo drives the real CLI, verb by verb

    seconds = run_demo(out, patients, seed, main)
    err_console.rule()
    err_console.print(
        "Data layer done. Training, evaluation and serving are not in the demo yet "
        "(they land with their own issues).",
        highlight=False,
    )
    print_summary(
        f"demo finished in {seconds:.0f} s: datasets in {out / 'datasets'}, "
        f"de-identified records in {out / 'deid'}, cohort in {out / 'cohort'}"
    )
