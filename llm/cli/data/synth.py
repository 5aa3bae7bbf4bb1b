"""``clinical-llm data synth``: generate a synthetic multimodal patient cohort."""

from __future__ import annotations

from pathlib import Path

import typer

from llm.cli.common import print_summary, progress_bar
from llm.data.synth import BIAS_FORM, generate_cohort, parse_bias


def register(app: typer.Typer) -> None:
    """Add ``synth`` to ``app``."""
    app.command("synth")(synth)


def synth(
    patients: int = typer.Option(..., "--patients", help="Number of patients to generate."),
    seed: int = typer.Option(
        ..., "--seed", help="Seed; the same seed gives byte-identical output."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output folder (records.jsonl, phi_spans.jsonl, images/, waveforms/, manifest.json).",
    ),
    bias: list[str] = typer.Option(
        [], "--bias", help=f"Degrade documentation for a subgroup: {BIAS_FORM}. Repeatable."
    ),
    image_size: int = typer.Option(
        128, "--image-size", help="Rows and columns of the chest X-ray images."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Worker processes (default: one per CPU core). Output does not depend on it.",
    ),
) -> None:
    """Generate a reproducible synthetic cohort: notes with PHI spans, labs, vitals, ICD-10
    codes, chest X-ray DICOMs, 12-lead ECGs and rule-based labels."""
    specs = [parse_bias(b) for b in bias]
    with progress_bar() as bar:
        task = bar.add_task("generating patients", total=patients)
        summary = generate_cohort(
            n_patients=patients,
            seed=seed,
            out_dir=out,
            bias=specs,
            image_size=image_size,
            workers=workers,
            progress=lambda n: bar.advance(task, n),
        )
    c = summary.counts
    degraded = ", ".join(f"{s}: {n} degraded" for s, n in zip(specs, summary.degraded, strict=True))
    print_summary(
        f"{summary.out_dir}: {summary.n_patients} patients, {c['encounters']} encounters, "
        f"{c['notes']} notes ({c['phi_spans']} PHI spans), {c['images']} images, {c['waveforms']} "
        "ECGs" + (f"; bias {degraded}" if degraded else "") + f" -> {summary.records_path}"
    )
