"""Held-out accuracy of a finished training run on its classification tasks.

    python -m llm.train.evaluate_run runs/tiny-lora-cpu [--split test] [--tasks a,b] [--json F]

Loads the run's model as ``final/`` holds it (a LoRA adapter on the run's base
model, or a full model), then scores each task's split two ways
(:mod:`llm.train.evaluate_choices`): constrained choice over the task's answer
space (from the dataset manifest) and greedy generation with exact match.
Prints one line per task and metric; ``--json`` writes everything, the
per-example predictions included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from llm.errors import BadInputError
from llm.train.datasets import load_task_split, read_dataset_manifest
from llm.train.evaluate_choices import choice_accuracy, generation_accuracy


def load_run_model(run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The trained model of a run folder, in eval mode, with its tokenizer and manifest.

    Raises:
        BadInputError: the folder has no manifest or no ``final/``.
    """
    from llm.models.loading import load_causal_lm

    manifest_path, final = run_dir / "manifest.json", run_dir / "final"
    if not manifest_path.is_file() or not final.is_dir():
        raise BadInputError(f"{run_dir}: not a finished training run (manifest.json, final/)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if (final / "adapter_config.json").is_file():
        from peft import PeftModel

        base, tokenizer = load_causal_lm(manifest["config"]["model"]["base"], dtype=torch.float32)
        model: Any = PeftModel.from_pretrained(base, str(final), is_trainable=False)
    else:
        model, tokenizer = load_causal_lm(final, dtype=torch.float32)
    return model.eval(), tokenizer, manifest


def evaluate_run(
    run_dir: Path,
    *,
    split: str = "test",
    tasks: list[str] | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Choice and greedy accuracy of a run on each classification task's ``split``.

    Args:
        run_dir: a finished run folder (``manifest.json``, ``final/``).
        split: the split to score.
        tasks: tasks to score; default the run's tasks that have an answer space.
        max_length: prompt budget; default the run's ``data.max_length``.

    Returns:
        ``{task: {"choice": {...}, "generation": {...}, "seconds": s}}``.
    """
    model, tokenizer, manifest = load_run_model(run_dir)
    data = manifest["config"]["data"]
    dataset_dir = Path(data["dataset_dir"])
    answers = {
        name: entry.get("answers") or []
        for name, entry in read_dataset_manifest(dataset_dir)["tasks"].items()
    }
    chosen = tasks or [t for t in data["tasks"] if answers.get(t)]
    budget = max_length or int(data["max_length"])
    results: dict[str, Any] = {}
    for task in chosen:
        if not answers.get(task):
            raise BadInputError(
                f"{task}: no answer space in the dataset manifest (not a classification task)"
            )
        rows = list(load_task_split(dataset_dir, task, split))
        started = time.perf_counter()
        results[task] = {
            "choice": choice_accuracy(
                model, tokenizer, rows, choices=answers[task], max_length=budget
            ),
            "generation": generation_accuracy(model, tokenizer, rows, max_length=budget),
        }
        results[task]["seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    """Print held-out accuracies of a run (exit 2 on bad input)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, help="finished training run folder")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument(
        "--tasks", help="comma-separated tasks (default: the run's classification tasks)"
    )
    parser.add_argument("--json", type=Path, help="also write the results, predictions included")
    args = parser.parse_args(argv)
    from llm.env import set_private_env

    set_private_env()
    try:
        results = evaluate_run(
            args.run_dir, split=args.split, tasks=args.tasks.split(",") if args.tasks else None
        )
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for task, result in results.items():
        for kind in ("choice", "generation"):
            r = result[kind]
            score = f"{r['accuracy']:.3f} ({r['correct']}/{r['n']})"
            print(f"{task} {args.split} {kind}: accuracy {score}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
