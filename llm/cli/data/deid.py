"""``clinical-llm data deid``: remove PHI from a records file and its assets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from llm.cli.common import err_console, out_console, print_read_stats, print_summary, track
from llm.data.deid.keys import KEY_ENV, STRATEGIES, load_key
from llm.errors import BadInputError, CheckFailedError
from llm.ray_cluster import RAY_ADDRESS_HELP

if TYPE_CHECKING:
    from llm.data.deid.evaluate import DeidEvaluation

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add ``deid`` and ``synth-deid-eval`` to the ``data`` command group."""
    app.command("deid")(deid)
    app.command("synth-deid-eval")(synth_deid_eval)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_evaluation(evaluation: DeidEvaluation) -> None:
    """Print the per-entity score table, and name recall by origin and clinical terms kept
    when the spans file records them (counts and ratios only)."""
    table = Table(title="PHI detection vs. true spans")
    for col in ("entity", "gold", "detected", "recall", "typed recall", "precision", "char recall"):
        table.add_column(col, justify="left" if col == "entity" else "right")
    rows = [(name, s) for name, s in evaluation.by_entity.items() if s.gold or s.predicted]
    for name, s in [*rows, ("overall", evaluation.overall)]:
        ratios = (s.recall, s.typed_recall, s.precision, s.char_recall)
        table.add_row(name, str(s.gold), str(s.predicted), *(_fmt(r) for r in ratios))
    out_console.print(table)
    regions = evaluation.names_by_region
    if regions is not None:
        by_origin = Table(title="Name recall by region of origin (95% Wilson interval)")
        for col in ("region", "names", "found", "recall", "95% CI"):
            by_origin.add_column(col, justify="left" if col == "region" else "right")
        for name, g in [*sorted(regions.by_group.items()), ("all names", regions.overall)]:
            ci = g.interval
            interval = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-"
            by_origin.add_row(name, str(g.gold), str(g.found), _fmt(g.recall), interval)
        out_console.print(by_origin)
        countries = evaluation.names_by_country
        worst_country = countries.worst if countries is not None else None
        out_console.print(
            f"worst region: {regions.worst or '-'}; worst country: {worst_country or '-'} "
            f"(groups with at least {regions.min_group} names)",
            highlight=False,
        )
    terms = evaluation.clinical_terms
    if terms is not None:
        out_console.print(
            f"clinical terms kept: {_fmt(terms.kept)} ({terms.overall.found} of "
            f"{terms.overall.gold}; "
            + ", ".join(f"{k} {_fmt(g.recall)}" for k, g in sorted(terms.by_kind.items()))
            + ")",
            highlight=False,
        )


def _count_lines(path: Path) -> int | None:
    if not path.is_file():
        return None
    with path.open("rb") as fh:  # bytes: a file in another encoding is the reader's to name
        return sum(1 for line in fh if line.strip())


def deid(
    records: Path = typer.Argument(..., help="Records file to de-identify (JSONL)."),
    out: Path = typer.Argument(
        ..., help="Records file to write; de-identified images and waveforms go under its folder."
    ),
    strategy: str = typer.Option(
        "surrogate",
        "--strategy",
        help=f"How PHI is replaced: {' or '.join(STRATEGIES)} ([NAME], [DATE], ...).",
    ),
    date_shift: bool = typer.Option(
        True,
        "--date-shift/--no-date-shift",
        help="Move every date (notes, structured times, DICOM) by one per-patient offset.",
    ),
    key_file: Path | None = typer.Option(
        None,
        "--key-file",
        help=f"Secret key for date offsets and surrogates (else ${KEY_ENV}, else a random key).",
    ),
    evaluate: bool = typer.Option(
        False,
        "--evaluate",
        help="Score detections against true PHI spans and write deid_eval.json beside OUT.",
    ),
    spans: Path | None = typer.Option(
        None,
        "--spans",
        help="PHI spans to score against (implies --evaluate; default: RECORDS' phi_spans.jsonl).",
    ),
    min_recall: float | None = typer.Option(
        None,
        "--min-recall",
        min=0.0,
        max=1.0,
        help="Exit 1 when overall recall is below this (implies --evaluate).",
    ),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Write invalid lines to the rejects file and go on instead of stopping.",
    ),
    rejects: Path | None = typer.Option(
        None,
        "--rejects",
        help="Rejects file for --skip-invalid (default: deid_rejects.jsonl beside OUT).",
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Worker processes, or Ray actors (output order is kept)."
    ),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    ner: str = typer.Option(
        "statistical",
        "--ner",
        help="How names and places are found: 'statistical' (default: the pinned spaCy NER "
        "beside the rules; finds names that no list holds) or 'rules' (patterns and name lists "
        "alone; several times faster, misses names without a title, label or list entry).",
    ),
) -> None:
    """De-identify RECORDS into OUT: notes, structured times, ages over 89, DICOM headers and
    PHI text burned into DICOM pixels (with tesseract; without it, the images are counted
    as not checked and a warning says so).

    Exit codes: 0 done, 1 recall below --min-recall, 2 bad input.
    """
    # Presidio and spaCy load here, not when the CLI starts.
    from llm.data.deid.burned_in import skip_message
    from llm.data.deid.records import deidentify_records, write_evaluation

    if strategy not in STRATEGIES:
        raise BadInputError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    key, generated = load_key(key_file)
    if generated:
        err_console.print(
            f"[yellow]warning:[/] no --key-file and no ${KEY_ENV}: using a random key for this run;"
            " "
            "date offsets and surrogates will not be reproducible.",
            highlight=False,
        )
    if not date_shift:
        err_console.print(
            "[yellow]warning:[/] --no-date-shift: dates in notes become [DATE], DICOM dates are "
            "emptied, structured times are kept as they are.",
            highlight=False,
        )
    evaluate = evaluate or min_recall is not None or spans is not None
    spans_path = (spans or records.parent / "phi_spans.jsonl") if evaluate else None
    rejects_path = (rejects or out.parent / "deid_rejects.jsonl") if skip_invalid else None
    total = _count_lines(records)

    def progress(items: Iterable[T]) -> Iterator[T]:
        return track(items, description="de-identifying", total=total)

    summary = deidentify_records(
        records,
        out,
        strategy=strategy,  # type: ignore[arg-type]
        date_shift=date_shift,
        key=key,
        key_generated=generated,
        skip_invalid=skip_invalid,
        rejects_path=rejects_path,
        workers=workers,
        spans_path=spans_path,
        progress=progress,
        ner=ner,  # type: ignore[arg-type]
        ray_address=ray_address,
    )
    print_read_stats(summary.stats)
    skipped = skip_message(summary.burned_in)
    if skipped is not None:
        err_console.print(f"[yellow]warning:[/] {escape(skipped)}", highlight=False)
    detected = sum(summary.detections.values())
    bi = summary.burned_in
    line = (
        f"de-identified {summary.stats.used} patients ({summary.notes} notes, {detected} PHI "
        f"spans, {summary.images} images, {summary.waveforms} waveforms; burned-in text: "
        f"{bi.checked} DICOM images checked, {bi.redacted_words} words redacted in "
        f"{bi.redacted_images}, {bi.unchecked} not checked; ner {summary.ner}) in "
        f"{summary.seconds:.1f}s -> {out}"
    )
    if rejects_path is not None and summary.stats.rejected:
        line += f"; rejects -> {rejects_path}"
    if summary.evaluation is not None:
        eval_path = out.parent / "deid_eval.json"
        write_evaluation(summary.evaluation, eval_path)
        print_evaluation(summary.evaluation)
        line += f"; evaluation -> {eval_path}"
        recall = summary.evaluation.overall.recall
        if min_recall is not None and (recall is None or recall < min_recall):
            print_summary(line)
            raise CheckFailedError(
                f"overall PHI recall {_fmt(recall)} is below --min-recall {min_recall}"
            )
    print_summary(line)


def synth_deid_eval(
    notes: int = typer.Option(..., "--notes", min=1, help="Number of held-out notes to write."),
    seed: int = typer.Option(
        ..., "--seed", help="Seed; the same (notes, seed) gives the same corpus."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (records.jsonl, phi_spans.jsonl, notes.jsonl)."
    ),
    all_scripts: bool = typer.Option(
        False,
        "--all-scripts",
        help="Also use names written in other scripts (Arabic, Cyrillic, Han...), not only "
        "romanised ones.",
    ),
) -> None:
    """Write the held-out de-identification corpus: notes no recognizer was built from, with
    every Safe Harbor kind and clinical terms to keep marked. Score an engine on it with
    `clinical-llm data deid OUT/records.jsonl DIR/records.jsonl --evaluate`."""
    from llm.data.deid.heldout.corpus import build_corpus

    corpus = build_corpus(notes, seed, latin_only=not all_scripts)
    files = corpus.write(out)
    spans = sum(len(n.phi) for n in corpus.notes)
    terms = sum(len(n.keep) for n in corpus.notes)
    print_summary(
        f"{out}: {len(corpus.by_patient())} patients, {len(corpus.notes)} notes ({spans} PHI "
        f"spans, {terms} clinical terms to keep) -> {files.records}, {files.spans}"
    )
