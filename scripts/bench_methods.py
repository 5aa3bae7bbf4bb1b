"""Seconds per optimizer step of LoRA, QLoRA and full fine-tuning of one model, side by side.

    .venv/bin/python scripts/bench_methods.py --base build/demo-smollm2/model \\
        --datasets build/demo-smollm2/datasets [--steps 6] [--micro-batch 4] [--max-length 512]

Each method runs its shipped recipe for SmolLM2-135M through the real entry
points, in a fresh process, for ``--steps`` steps of ``--micro-batch`` rows of
at most ``--max-length`` tokens (packed rows, as the recipes train; the demo's
prompts are 600-800 tokens, so at 512 every row is one example cut to the length):

* ``lora``: ``python -m llm.train recipes/smollm2-135m-lora-cpu.yaml``, one process;
* ``qlora``: ``recipes/smollm2-135m-qlora-cpu.yaml``, one process, nf4 base;
* ``full-zero3``: ``accelerate launch --config_file recipes/accelerate/cpu-zero3.yaml``
  with ``recipes/smollm2-135m-full-zero3-cpu.yaml``, two processes.

``--precision`` sets ``model.dtype`` for every arm (``auto``: bf16 where the CPU
has native bf16). The seconds per step come from each run's manifest (real
tokens seen / tokens per second, from the first step on), so model loading and
tokenization are left out; the first step's warm-up is in. Prints a table and
each method's time relative to LoRA; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHODS: dict[str, tuple[str | None, str]] = {
    "lora": (None, "recipes/smollm2-135m-lora-cpu.yaml"),
    "qlora": (None, "recipes/smollm2-135m-qlora-cpu.yaml"),
    "full-zero3": ("recipes/accelerate/cpu-zero3.yaml", "recipes/smollm2-135m-full-zero3-cpu.yaml"),
}


def run_method(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Train one method's recipe for ``args.steps`` steps; its seconds per step and memory."""
    accelerate_config, recipe = METHODS[name]
    out = work / name
    argv = (
        [str(BIN / "accelerate"), "launch", "--config_file", accelerate_config]
        if accelerate_config
        else [sys.executable]
    )
    argv += ["-m", "llm.train", recipe]
    for item in (
        f"model.base={args.base}",
        f"model.dtype={args.precision}",
        f"data.dataset_dir={args.datasets}",
        f"data.max_length={args.max_length}",
        "data.packing=true",
        "data.eval_split=null",
        f"training.output_dir={out}",
        f"training.max_steps={args.steps}",
        f"training.micro_batch_size={args.micro_batch}",
        "training.gradient_accumulation_steps=1",
        "training.eval_every_steps=null",
        "training.early_stopping_patience=null",
        f"training.save_every_steps={args.steps}",
        "training.logging_steps=1",
        "tracking.backend=none",
    ):
        argv += ["--set", item]
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(REPO / "build" / "torch_extensions")}
    log = work / f"{name}.log"
    started = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: training exited {proc.returncode}; see {log}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    results = manifest["results"]
    seconds = results["tokens_seen"] / results["tokens_per_second"]
    return {
        "method": name,
        "recipe": recipe,
        "processes": manifest["world_size"],
        "precision": manifest["precision"],
        "steps": results["global_step"],
        "tokens_seen": results["tokens_seen"],
        "tokens_per_second": results["tokens_per_second"],
        "seconds_per_step": round(seconds / results["global_step"], 2),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "trainable_parameters": manifest["model"].get("trainable_params"),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen methods one after the other and print their step times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("build/demo-smollm2/model"))
    parser.add_argument("--datasets", type=Path, default=Path("build/demo-smollm2/datasets"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--work", type=Path, default=Path("build/bench-methods"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    for path in (args.base, args.datasets):
        if not path.is_dir():
            parser.error(f"{path}: not found (make demo BASE=smollm2 writes both)")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        print(
            f"{name}: {args.steps} steps of {args.micro_batch} x {args.max_length} tokens",
            flush=True,
        )
        rows.append(run_method(name, args, args.work))
    reference = next((r for r in rows if r["method"] == "lora"), rows[0])
    versus = "vs " + reference["method"]
    print(f"\n{'method':12} {'procs':>5} {'precision':>9} {'s/step':>7} {'tok/s':>7} {versus:>9}")
    for row in rows:
        ratio = row["seconds_per_step"] / reference["seconds_per_step"]
        print(
            f"{row['method']:12} {row['processes']:>5} {row['precision']:>9} "
            f"{row['seconds_per_step']:>7.2f} {row['tokens_per_second']:>7.0f} {ratio:>8.2f}x"
        )
    if args.json is not None:
        settings = {k: str(v) for k, v in vars(args).items() if k != "json"}
        report = {"settings": settings, "methods": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
