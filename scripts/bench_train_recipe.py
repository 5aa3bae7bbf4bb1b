"""The real-training-path parts of ``scripts/bench_train.py`` (``--recipe``, ``--launch``).

* :func:`bench_recipe`: real (non-pad) tokens/s of ``run_training`` with packing
  vs a plain ``transformers.Trainer`` on right-padded batches, same model,
  tokenized examples, micro batch and optimizer steps; each arm in a fresh
  process (this file's ``main``), in ``--repeats`` alternating rounds.
* :func:`bench_launch`: ``llm.train`` under ``accelerate launch`` (2 processes,
  DeepSpeed ZeRO-2) vs one plain process; tokens/s from each run's manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
# one optimizer-step run on the training data only: no eval, no checkpoints, no tracking
QUIET = [
    "training.eval_every_steps=null",
    "training.early_stopping_patience=null",
    "training.save_every_steps=null",
    "tracking.backend=none",
    "data.eval_split=null",
]


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def _plain_trainer(recipe: Any) -> dict[str, Any]:
    """A plain HF Trainer on padded batches (dynamic padding to the longest in each batch)."""
    from transformers import DataCollatorForSeq2Seq, Trainer, set_seed

    from llm.train.datasets import build_split
    from llm.train.model_setup import base_config, load_model, training_precision
    from llm.train.trainer import build_training_arguments

    precision = training_precision(recipe, base_config(recipe))
    args = build_training_arguments(recipe, precision=precision, deepspeed=None, has_eval=False)
    args.include_num_input_tokens_seen = "non_padding"  # HF's own count: attention-mask sum
    set_seed(recipe.training.seed)
    loaded = load_model(recipe, precision=precision)
    split = build_split(recipe, recipe.data.train_split, loaded.tokenizer)
    trainer = Trainer(
        model=loaded.model,
        args=args,
        train_dataset=split.dataset.select_columns(["input_ids", "labels"]),
        data_collator=DataCollatorForSeq2Seq(
            loaded.tokenizer, padding="longest", label_pad_token_id=-100
        ),
    )
    cpu = time.process_time()
    output = trainer.train()
    cpu = time.process_time() - cpu
    tokens = int(trainer.state.num_input_tokens_seen)
    seconds = float(output.metrics["train_runtime"])
    return {
        "mode": f"plain HF Trainer, padded, {precision}",
        "steps": trainer.state.global_step,
        "real_tokens": tokens,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "tokens_per_s": tokens / seconds,
    }


def _recipe_path(recipe: Any) -> dict[str, Any]:
    from llm.train.model_setup import base_config, training_precision
    from llm.train.trainer import run_training

    precision = training_precision(recipe, base_config(recipe))
    cpu = time.process_time()
    result = run_training(recipe)
    cpu = time.process_time() - cpu
    seconds = result.tokens_seen / result.tokens_per_second if result.tokens_per_second else 0.0
    return {
        "mode": f"run_training, packed, {precision}",
        "steps": result.global_step,
        "real_tokens": result.tokens_seen,
        "seconds": seconds,
        "cpu_seconds": cpu,  # includes loading and tokenizing: an upper bound
        "tokens_per_s": result.tokens_per_second,
    }


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("mode", "steps", "real tokens", "train s", "real tok/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["mode"],
            str(r["steps"]),
            f"{r['real_tokens']:,}",
            f"{r['seconds']:.1f}",
            f"{r['tokens_per_s']:,.0f}",
        )
    return table


ARMS = ("plain", "plain-fp32", "recipe")


def _arm_overrides(args: argparse.Namespace, arm: str) -> list[str]:
    """Recipe overrides of one arm: the plain Trainer pads, the recipe path packs."""
    from llm.train.attention import SDPA_VARLEN
    from llm.train.recipe import load_recipe

    single = ["deepspeed=null", "launch.accelerate_config=null", f"training.max_steps={args.steps}"]
    common = [*args.overrides, *QUIET, *single]
    if arm == "recipe":
        return [*common, "data.packing=true", f"training.output_dir={args.out / 'packed'}"]
    # the plain Trainer pads, so it gets sdpa's mask where the recipe runs sdpa_varlen
    attn = load_recipe(args.recipe, [*common, "data.packing=true"]).model.attn_implementation
    padded = [
        *common,
        "data.packing=false",
        f"model.attn_implementation={'sdpa' if attn == SDPA_VARLEN else attn}",
        f"training.output_dir={args.out / 'padded'}",
    ]
    return [*padded, "model.dtype=fp32"] if arm == "plain-fp32" else padded


def run_arm(recipe_path: Path, overrides: list[str], arm: str) -> dict[str, Any]:
    """One arm in this process: the plain Trainer or ``run_training``, on a fresh folder."""
    from llm.train.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    _fresh(recipe.training.output_dir)
    return _recipe_path(recipe) if arm == "recipe" else _plain_trainer(recipe)


def _arm_in_subprocess(recipe: Path, arm: str, overrides: list[str], log: Path) -> dict[str, Any]:
    # a fresh process per arm: nothing (accelerate's state, the allocator, threads)
    # carries over from the arm before
    result = log.with_suffix(".json")
    argv = [sys.executable, __file__, "--arm", arm, "--recipe", str(recipe),
            "--result", str(result)]  # fmt: skip
    for item in overrides:
        argv += ["--set", item]
    _launch(argv, log)
    return dict(json.loads(result.read_text()))


def bench_recipe(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """The recipe path vs a plain Trainer, each arm in its own process, in alternating rounds.

    The plain Trainer runs at the recipe's precision (the fair comparison) and,
    when ``model.dtype: auto`` picked bf16 (a CPU with native bf16), once more
    at fp32, the Trainer's own default. Prints each round and the median of
    each arm.
    """
    from llm.train.model_setup import base_config, training_precision
    from llm.train.recipe import load_recipe

    overrides = {a: _arm_overrides(args, a) for a in ARMS}
    padded = load_recipe(args.recipe, overrides["plain"])
    fp32_baseline = (
        padded.model.dtype == "auto" and training_precision(padded, base_config(padded)) != "fp32"
    )
    arms = [a for a in ARMS if fp32_baseline or a != "plain-fp32"]
    args.out.mkdir(parents=True, exist_ok=True)
    rounds = [
        {
            a: _arm_in_subprocess(args.recipe, a, overrides[a], args.out / f"{a}-{r}.log")
            for a in arms
        }
        for r in range(args.repeats)
    ]
    # each arm's median round (the lower middle one for an even count), whole row
    medians = {
        a: sorted((x[a] for x in rounds), key=lambda row: row["tokens_per_s"])[
            (len(rounds) - 1) // 2
        ]
        for a in arms
    }
    console.print(_table(f"{args.recipe.name}: {args.steps} steps, micro batch "
                         f"{padded.training.micro_batch_size}, max_length "
                         f"{padded.data.max_length}; median of {args.repeats} round(s)",
                         [medians[a] for a in arms]))  # fmt: skip
    report: dict[str, Any] = {
        "recipe": str(args.recipe),
        "overrides": args.overrides,
        "rounds": rounds,
        "results": [medians[a] for a in arms],
    }
    for baseline, key, label in (
        ("plain", "ratio", "plain Trainer (padded), same precision"),
        ("plain-fp32", "ratio_vs_fp32_trainer", "plain Trainer (padded, fp32, its default)"),
    ):
        if baseline not in arms:
            continue
        per_round = [x["recipe"]["tokens_per_s"] / x[baseline]["tokens_per_s"] for x in rounds]
        report[key] = medians["recipe"]["tokens_per_s"] / medians[baseline]["tokens_per_s"]
        report[f"{key}_per_round"] = per_round
        console.print(
            f"run_training (packed) / {label}, real tokens/s: {report[key]:.2f}x "
            f"(rounds: {', '.join(f'{x:.2f}' for x in per_round)})"
        )
    return report


def _launch(argv: list[str], log: Path) -> None:
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(REPO / "build" / "torch_extensions"))
    with log.open("w") as out:
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed; see {log}")


def bench_launch(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """2 processes under DeepSpeed ZeRO-2 vs 1 process: real tokens/s from the manifests."""
    python = Path(sys.executable)
    args.out.mkdir(parents=True, exist_ok=True)  # the launch logs sit beside the run folders
    rows = []
    for label, prefix in (
        ("1 process", [str(python)]),
        (
            "2 processes, ZeRO-2",
            [str(python.parent / "accelerate"), "launch", "--config_file", args.accelerate_config],
        ),
    ):
        out = _fresh(args.out / label.split(",")[0].replace(" ", "-"))
        argv = [*prefix, "-m", "llm.train", str(args.recipe)]
        for item in [*args.overrides, *QUIET, f"training.max_steps={args.steps}"]:
            argv += ["--set", item]
        argv += ["--set", f"training.output_dir={out}"]
        started = time.perf_counter()
        _launch(argv, args.out / f"{out.name}.log")
        wall = time.perf_counter() - started
        manifest = json.loads((out / "manifest.json").read_text())
        results = manifest["results"]
        rows.append(
            {
                "mode": label,
                "world_size": manifest["world_size"],
                "steps": results["global_step"],
                "real_tokens": results["tokens_seen"],
                "seconds": results["tokens_seen"] / results["tokens_per_second"],
                "tokens_per_s": results["tokens_per_second"],
                "wall_with_startup_s": wall,
            }
        )
    ratio = rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"]
    console.print(_table(f"{args.recipe.name}: {args.steps} optimizer steps each", rows))
    console.print(f"2 processes (ZeRO-2) / 1 process real tokens/s: {ratio:.2f}x")
    return {
        "recipe": str(args.recipe),
        "overrides": args.overrides,
        "results": rows,
        "ratio": ratio,
    }


def main() -> None:
    """One arm of :func:`bench_recipe`, run by it in a fresh process."""
    from llm.env import set_private_env

    set_private_env()
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--arm", choices=ARMS, required=True)
    p.add_argument("--recipe", type=Path, required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--result", type=Path, required=True, help="JSON file for the arm's row")
    args = p.parse_args()
    row = run_arm(args.recipe, args.overrides, args.arm)
    args.result.write_text(json.dumps(row))


if __name__ == "__main__":
    main()
