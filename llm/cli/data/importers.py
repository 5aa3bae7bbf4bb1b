"""``clinical-llm data import fhir|mimic``: clinical source formats to a records file."""

from __future__ import annotations

from pathlib import Path

import typer

from llm.cli.common import err_console, print_read_stats, print_summary, track
from llm.data.importers.common import ImportReport
from llm.data.importers.fhir import import_fhir
from llm.data.importers.mimic import import_mimic
from llm.errors import BadInputError

import_app = typer.Typer(
    help="Import clinical records (FHIR R4 Bundles, MIMIC-IV-Note CSVs) into a records file.",
    no_args_is_help=True,
)

_OUT_HELP = "Records file to write (JSONL, one patient per line)."
_SKIP_HELP = "Reject invalid patients (counted, written to --rejects) and go on; default: stop."
_REJECTS_HELP = "With --skip-invalid: write each rejected patient's errors here (JSONL)."


def register(app: typer.Typer) -> None:
    """Add ``import fhir`` and ``import mimic`` to ``app``."""
    app.add_typer(import_app, name="import")


def _check_rejects(skip_invalid: bool, rejects: Path | None) -> None:
    if rejects is not None and not skip_invalid:
        raise BadInputError("--rejects needs --skip-invalid (without it the first error stops)")


def _finish(report: ImportReport, what: str) -> None:
    print_read_stats(report.stats)
    if report.skipped:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.skipped.items()))
        err_console.print(
            f"not imported (no place in the record): {kinds}", highlight=False, markup=False
        )
    if report.stats.rejected:
        where = f"; errors in {report.rejects_path}" if report.rejects_path else ""
        err_console.print(
            f"rejected {report.stats.rejected}{where}; first: {report.stats.errors[0]}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    assets = f", {report.assets_written} asset file(s) in {report.assets_dir}"
    print_summary(
        f"wrote {report.stats.used} {what} record(s) to {report.out_path}"
        + (assets if report.assets_written else "")
    )


@import_app.command("fhir")
def fhir(
    bundle_dir: Path = typer.Argument(
        ..., help="Folder of FHIR R4 Bundles (*.json) and/or bulk-export resources (*.ndjson)."
    ),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=_SKIP_HELP),
    rejects: Path | None = typer.Option(None, "--rejects", help=_REJECTS_HELP),
) -> None:
    """Import FHIR R4 Bundles: one record per Patient; images go to <out_stem>_assets/.

    Errors name the file, the bundle entry and the field; exit code 2 on the
    first bad patient unless --skip-invalid.
    """
    _check_rejects(skip_invalid, rejects)
    report = import_fhir(
        bundle_dir, out, skip_invalid=skip_invalid, rejects_path=rejects, progress=track
    )
    _finish(report, "FHIR")


@import_app.command("mimic")
def mimic(
    notes: Path = typer.Argument(
        ..., help="MIMIC-IV-Note CSV (discharge.csv / radiology.csv, .csv or .csv.gz)."
    ),
    patients: Path = typer.Option(..., "--patients", help="MIMIC-IV hosp patients.csv(.gz)."),
    admissions: Path | None = typer.Option(
        None,
        "--admissions",
        help="MIMIC-IV hosp admissions.csv(.gz): encounters, race, payer, language, readmission.",
    ),
    diagnoses: Path | None = typer.Option(
        None, "--diagnoses", help="MIMIC-IV hosp diagnoses_icd.csv(.gz); needs --admissions."
    ),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=_SKIP_HELP),
    rejects: Path | None = typer.Option(None, "--rejects", help=_REJECTS_HELP),
) -> None:
    """Import MIMIC-IV-Note notes: one record per subject_id, joined to the hosp tables.

    Errors name the CSV file, line and column; exit code 2 on the first bad
    subject unless --skip-invalid.
    """
    _check_rejects(skip_invalid, rejects)
    report = import_mimic(
        notes,
        patients,
        out,
        admissions_path=admissions,
        diagnoses_path=diagnoses,
        skip_invalid=skip_invalid,
        rejects_path=rejects,
        progress=track,
    )
    _finish(report, "MIMIC")
