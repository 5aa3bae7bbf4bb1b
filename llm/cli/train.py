"""``clinical-llm train RECIPE.yaml``: fine-tune a model as a recipe describes.

The same arguments work under accelerate, which needs a module to start in
every process::

    accelerate launch --config_file recipes/accelerate/cpu-zero2.yaml \\
        -m llm.train recipes/tiny-lora-cpu.yaml --set training.max_steps=10

(``llm/train/__main__.py`` calls :func:`main` here, so both entry points parse
alike.) ``--dry-run`` builds the model on the meta device and prints parameter
counts and memory estimates without reading weights or data.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from llm.cli.common import err_console, out_console, print_summary, run_app
from llm.env import set_private_env
from llm.errors import BadInputError
from llm.train.distributed import end_rank_process

log = logging.getLogger(__name__)

TRAIN_INSTALL = "pip install 'clinical-llm[train]'"
# top-level modules of the `train` extra (pyproject.toml) that the training loop imports
TRAIN_EXTRA_MODULES = frozenset(
    ("torch", "transformers", "tokenizers", "accelerate", "peft", "deepspeed", "safetensors")
)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train)


def train(
    recipe: Path = typer.Argument(
        ..., help="Recipe YAML (recipes/*.yaml); relative paths inside resolve against the CWD."
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="Override one recipe value, key.sub=value, parsed as YAML (false, 10, \\[a,b], "
        "null). Repeatable; applied after the file, in order: defaults < YAML < --set.",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint in training.output_dir."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Validate the recipe, build the model on the meta device (no weights read) and "
        "print parameter counts, DeepSpeed memory estimates and tokens per step; train nothing.",
    ),
) -> None:
    """Fine-tune the model of RECIPE (see recipes/README.md for every field)."""
    from llm.train.recipe import load_recipe

    loaded = load_recipe(recipe, overrides)
    if dry_run:
        from llm.train.dry_run import dry_run as run_dry
        from llm.train.dry_run import render_report, short_count

        with err_console.status("building the model on the meta device"):
            report = run_dry(loaded)
        out_console.print(render_report(report))
        print_summary(
            f"dry run of {recipe}: {short_count(report.base_params)} parameters, "
            f"{report.trainable_params:,} trainable, "
            f"{report.model_states[-1].per_gpu_bytes / 2**30:.1f} GiB model states per GPU "
            f"(world size {report.world_size}); nothing trained"
        )
        return
    try:
        from llm.train.trainer import run_training
    except ModuleNotFoundError as exc:
        # a data-only install (no `train` extra) still loads and checks recipes
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA_MODULES:
            raise
        raise BadInputError(
            f"training needs the train extra ({exc.name} is not installed): {TRAIN_INSTALL}"
        ) from None
    output = run_training(loaded, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under a launcher every rank gets here
        print_summary(f"trained {recipe}: outputs in {output or loaded.training.output_dir}")
    end_rank_process()  # a rank of a finished multi-process run: no teardown abort


def main(argv: list[str] | None = None) -> int:
    """Run ``train`` as a program of its own (``python -m llm.train``), exit codes as the CLI's.

    Returns:
        0 ok, 1 a check failed, 2 bad input or usage.
    """
    set_private_env()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    return run_app(app, argv, prog_name="python -m llm.train")


if __name__ == "__main__":
    sys.exit(main())
