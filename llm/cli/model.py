"""``clinical-llm model …``: build the embedded base model from the note corpus."""

from __future__ import annotations

from pathlib import Path

import typer

from llm.cli.common import err_console, print_read_stats, print_summary, progress_bar

model_app = typer.Typer(
    help="Base models: build the tiny clinical Llama (and its vision-language twin).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``model`` sub-command group to ``app``."""
    app.add_typer(model_app, name="model")


@model_app.command("init")
def init(
    records: Path = typer.Option(
        ..., "--records", help="De-identified records file (JSONL); its note texts are the corpus."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Model folder to write (e.g. models/tiny-clinical)."
    ),
    size: str = typer.Option(
        "tiny",
        "--size",
        help="tiny: 256 hidden, 4 layers, 4k vocab; small: 512 hidden, 8 layers, 8k vocab.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seeds the held-out split, weight init and batch order."
    ),
    steps: int | None = typer.Option(
        None,
        "--steps",
        min=1,
        help="Pretraining steps (default tiny 500: about 2 minutes on 2 cores with native bf16, "
        "6 in fp32; small 200).",
    ),
    block_size: int | None = typer.Option(
        None, "--block-size", min=8, help="Tokens per packed training block (default 512)."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Blocks per training step (default 4)."
    ),
    learning_rate: float | None = typer.Option(
        None,
        "--learning-rate",
        min=0.0,
        help="Peak AdamW learning rate, warm-up then cosine decay (default 3e-3).",
    ),
    threads: int = typer.Option(
        0,
        "--threads",
        min=0,
        help="CPU threads for pretraining (0: torch's default, all cores; 2 threads were "
        "measured 1.7x faster than one on a quiet 2-core machine). Use 1 on a machine busy "
        "with other work, where one was measured 3x faster than two.",
    ),
    bf16: bool | None = typer.Option(
        None,
        "--bf16/--fp32",
        help="Matmuls of the pretraining steps in bf16 autocast (weights stay fp32). Default: "
        "bf16 where the device has native bf16 (CUDA; CPUs with AVX512-BF16 or AMX), else fp32.",
    ),
    exclude_eval_patients_of: Path | None = typer.Option(
        None,
        "--exclude-eval-patients-of",
        help="A `data build` folder: leave its validation and test patients out of "
        "pretraining, so the base model never reads the notes it is evaluated on.",
    ),
    multimodal: bool = typer.Option(
        False,
        "--multimodal",
        help="Also write a LLaVA vision-language model built on the pretrained Llama, "
        "to OUT's sibling folder <name>-vl (see --vl-out).",
    ),
    vl_out: Path | None = typer.Option(
        None, "--vl-out", help="Folder for the vision-language model (default: <OUT>-vl)."
    ),
) -> None:
    """Train a byte-level BPE tokenizer and pretrain a tiny Llama on the notes of RECORDS.

    Writes a standard safetensors checkpoint (loadable offline with
    AutoModelForCausalLM / AutoTokenizer) with manifest.json recording the
    initial and final loss and held-out perplexity.
    """
    # Imported here so `clinical-llm --help` does not pay for torch/transformers.
    from transformers.utils import logging as hf_logging

    from llm.errors import BadInputError
    from llm.models.bootstrap import InitOptions, init_base_model
    from llm.models.corpus import read_note_corpus
    from llm.models.multimodal import init_vlm, vlm_folder_for
    from llm.models.tiny import SHAPES

    if size not in SHAPES:
        raise BadInputError(f"--size: unknown size {size!r}; choose one of {sorted(SHAPES)}")
    hf_logging.disable_progress_bar()
    given = {"block_size": block_size, "batch_size": batch_size, "learning_rate": learning_rate}
    options = InitOptions(
        size=size,  # type: ignore[arg-type]  # checked against SHAPES above
        seed=seed,
        steps=steps,
        threads=threads or None,
        bf16=bf16,
        exclude_eval_patients_of=exclude_eval_patients_of,
        **{name: value for name, value in given.items() if value is not None},  # type: ignore[arg-type]
    )
    corpus = read_note_corpus(records)
    print_read_stats(corpus.stats)
    total = options.resolved_steps()
    with progress_bar() as bar:
        task = bar.add_task("pretraining", total=total)

        def on_step(step: int, loss: float) -> None:
            bar.update(task, completed=step, description=f"pretraining loss {loss:.3f}")

        manifest = init_base_model(corpus, out, options, on_step=on_step)
    run = manifest["pretraining"]
    if exclude_eval_patients_of is not None:
        err_console.print(
            f"left out {manifest['counts']['excluded_eval_patients']} validation/test patients "
            f"of {exclude_eval_patients_of}; pretrained on {manifest['counts']['train_patients']}",
            highlight=False,
        )
    err_console.print(
        f"{manifest['model']['parameters']:,} parameters; loss {run['initial_loss']:.3f} -> "
        f"{run['final_loss']:.3f}; held-out perplexity {run['held_out_perplexity_before']:.1f} "
        f"-> {run['held_out_perplexity_after']:.1f} in {run['seconds']:.0f} s "
        f"({run['precision']})",
        highlight=False,
        soft_wrap=True,
    )
    written = str(out)
    if multimodal:
        target = vl_out if vl_out is not None else vlm_folder_for(out)
        init_vlm(out, target, seed=seed)
        written += f" and {target}"
    print_summary(f"model init: {size} model written to {written}")
