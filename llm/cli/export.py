"""``clinical-llm export RUN_DIR --out DIR``: a trained model as a folder a server loads.

With ``--triton`` the output is a Triton model repository instead (RUN_DIR may
then also be a plain model folder, e.g. an earlier ``--merge`` export); see
docs/triton.md.

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
        ...,
        help="Training run folder (training.output_dir, with manifest.json); with --triton "
        "also a plain model folder (config.json, *.safetensors, tokenizer).",
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
    triton: bool = typer.Option(
        False,
        "--triton",
        help="Write a Triton model repository (config.pbtxt, Python-backend model.py that "
        "streams tokens, the weights copied in). LoRA runs are merged first.",
    ),
) -> None:
    """Export a run (or, with --triton, a model folder) as a folder a server loads.

    LoRA runs give the adapter, or merged weights with --merge; full fine-tunes
    give their weights; --triton writes a Triton model repository. Every export
    carries the tokenizer, the chat template and a manifest with file hashes.
    """
    if triton:
        _export_triton(run_dir, out, checkpoint, dtype, name, allow_deepspeed_shards)
        return
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


def _export_triton(
    source: Path,
    out: Path,
    checkpoint: str,
    dtype: Dtype | None,
    name: str | None,
    allow_deepspeed_shards: bool,
) -> None:
    from llm.export.triton import export_triton

    with err_console.status("exporting for Triton") as status:
        result = export_triton(
            source,
            out,
            name=name,
            checkpoint=checkpoint,
            dtype=dtype.value if dtype is not None else None,
            allow_deepspeed_shards=allow_deepspeed_shards,
            progress=lambda stage: status.update(f"export: {stage}"),
        )
    print_summary(
        f"exported {source} as Triton model '{result.name}' (python backend, "
        f"{'streaming' if result.decoupled else 'non-streaming'}, context "
        f"{result.max_model_len}, {len(result.files)} files, "
        f"{result.total_bytes / 2**20:.1f} MiB) in {result.seconds:.0f} s: {out}"
    )
