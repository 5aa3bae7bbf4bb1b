"""``clinical-llm data build``: render task datasets (HF DatasetDicts) from a records file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import typer

from llm.cli.common import err_console, print_read_stats, print_summary, track
from llm.data.build import build_task_datasets, parse_split, parse_task_names
from llm.data.schema import PatientRecord
from llm.data.tasks import TASKS
from llm.ray_cluster import RAY_ADDRESS_HELP


def register(app: typer.Typer) -> None:
    """Add ``build`` to the ``data`` command group."""
    app.command("build")(build)


def _progress(records: Iterable[PatientRecord], total: int) -> Iterable[PatientRecord]:
    return track(records, description="rendering examples", total=total)


def build(
    records: Path = typer.Option(
        ..., "--records", help="Records file (JSONL, one patient per line)."
    ),
    tasks: str = typer.Option(
        ..., "--tasks", help=f"Comma-separated task names; known: {', '.join(TASKS.names())}."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (new, empty, or an earlier build, which is replaced)."
    ),
    split: str = typer.Option(
        "0.8,0.1,0.1",
        "--split",
        help="Train,validation,test proportions (by patient, summing to 1).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the patient split."),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Skip invalid record lines and unreadable image/ECG files (counted), don't stop.",
    ),
    rejects: Path | None = typer.Option(
        None,
        "--rejects",
        help="With --skip-invalid: write invalid lines here (JSONL; default OUT/rejects.jsonl).",
    ),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Ray actors rendering records (with --ray-address)."
    ),
) -> None:
    """Render chat examples of the given TASKS from RECORDS, split by patient, into OUT.

    Writes a datasets.DatasetDict (train/validation/test) per task at OUT/<task>.

    PNG assets go under OUT/assets; counts and hashes to OUT/manifest.json.

    Exit 2 on an unknown task or invalid input. See docs/tasks.md.
    """
    task_names = parse_task_names(tasks)
    proportions = parse_split(split)
    result = build_task_datasets(
        records,
        task_names,
        out,
        split=proportions,
        seed=seed,
        skip_invalid=skip_invalid,
        rejects=rejects,
        progress=_progress,
        ray_address=ray_address,
        workers=workers,
    )
    print_read_stats(result.stats)
    total = 0
    for name, entry in result.manifest["tasks"].items():
        counts = entry["counts"]
        total += entry["examples"]
        skipped = ", ".join(f"{reason} {n}" for reason, n in entry["skipped"].items()) or "none"
        err_console.print(
            f"{name}: {entry['examples']} examples (train {counts['train']}, validation "
            f"{counts['validation']}, test {counts['test']}); skipped {entry['skipped_total']} "
            f"({skipped})",
            highlight=False,
        )
    print_summary(
        f"built {len(task_names)} task dataset(s), {total} examples, from {result.stats.used} "
        f"patients in {out} (manifest: {out / 'manifest.json'})"
    )
