"""``clinical-llm data validate``: check a records file against the schema."""

from __future__ import annotations

from pathlib import Path

import typer

from llm.cli.common import print_read_stats, print_summary
from llm.data.io import ReadStats, iter_records
from llm.errors import CheckFailedError


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    records: Path = typer.Argument(..., help="Records file (JSONL, one patient per line)."),
    rejects: Path | None = typer.Option(
        None,
        "--rejects",
        help="Write every invalid line with its errors here (JSONL) instead of stopping "
        "at the first.",
    ),
    check_assets: bool = typer.Option(
        True, "--check-assets/--no-check-assets", help="Check that image and waveform files exist."
    ),
) -> None:
    """Validate RECORDS: every line must be a valid patient record with existing asset files.

    Stops at the first bad line (exit 2) unless --rejects is given, in which case
    every bad line is written there and the exit code is 1 when any was found.
    """
    stats = ReadStats(str(records))
    if rejects is None:
        for _ in iter_records(records, stats=stats, check_assets=check_assets):
            pass
    else:
        rejects.parent.mkdir(parents=True, exist_ok=True)
        with rejects.open("w", encoding="utf-8") as fh:
            for _ in iter_records(
                records, stats=stats, skip_invalid=True, rejects=fh, check_assets=check_assets
            ):
                pass
    print_read_stats(stats)
    if stats.rejected:
        raise CheckFailedError(f"{stats.rejected} invalid record(s); see {rejects}")
    print_summary(f"{records}: all {stats.used} records valid")
