"""``clinical-llm export RUN_DIR --out DIR``: a trained model as a folder a server loads.

LoRA runs export their adapter (pointing at the local base) unless ``--merge``
folds it into the base; full fine-tunes export their consolidated weights.
The work is in :mod:`llm.export`; see docs/export.md.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from llm.cli.common import err_console, print_summary


class Dtype(str, Enum):
    """Weight dtypes an export can write."""

    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command("export")(export)


def export(
    run_dir: Path = typer.Argument(
        ..., help="Training run folder (training.output_dir, with manifest.json)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Export folder: missing, empty, or an earlier export (replaced whole).",
    ),
    merge: bool = typer.Option(
        False,
        "--merge",
        help="LoRA/QLoRA runs: fold the adapter into the base and write a plain model "
        "(loads without peft). Done in a separate process.",
    ),
    checkpoint: str = typer.Option(
        "final",
        "--checkpoint",
        help="Which saved model: final, latest (newest checkpoint-N) or checkpoint-N.",
    ),
    dtype: Dtype | None = typer.Option(
        None,
        "--dtype",
        help="Dtype of the written weights (default: as saved; a merge uses the base's dtype).",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Model name to serve it under, recorded in the manifest (default: the run "
        "folder's name).",
    ),
    allow_deepspeed_shards: bool = typer.Option(
        False,
        "--allow-deepspeed-shards",
        help="Consolidate a checkpoint that holds only DeepSpeed ZeRO shards. They are "
        "pickle files the run wrote; they are read weights-only with an allowlist of "
        "DeepSpeed classes.",
    ),
) -> None:
    """Export one saved model of RUN_DIR: adapter, merged model or full weights, with the
    tokenizer, chat template and a manifest (file hashes, run and base references)."""
    from llm.export import export_run

    with err_console.status("exporting") as status:
        result = export_run(
            run_dir,
            out,
            merge=merge,
            checkpoint=checkpoint,
            dtype=dtype.value if dtype is not None else None,
            name=name,
            allow_deepspeed_shards=allow_deepspeed_shards,
            progress=lambda stage: status.update(f"export: {stage}"),
        )
    print_summary(
        f"exported {result.source.checkpoint} of {run_dir} as {result.format} "
        f"'{result.name}' ({len(result.files)} files, {result.total_bytes / 2**20:.1f} MiB, "
        f"{result.dtype or 'dtype as saved'}) in {result.seconds:.0f} s: {out}"
    )
