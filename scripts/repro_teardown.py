"""Reproduce the teardown abort of multi-process gloo runs (docs/training.md "Process teardown").

    .venv/bin/python scripts/repro_teardown.py gloo --variant held --hold-gil --runs 10
    .venv/bin/python scripts/repro_teardown.py recipe --runs 10 --load 2 [--assets DIR]

``gloo``: two plain torch.distributed ranks (no DeepSpeed) run a few synchronous
all_reduces and a barrier on the world group and a second group, then return
from main. ``--variant`` says what happens to the groups before the interpreter
exits:

- ``held``: a module-level list keeps both groups (what DeepSpeed's references
  do in a ZeRO-3 run), so they are never destroyed;
- ``released``: ``destroy_process_group()`` with no reference left, so each
  group's destructor joins its worker threads before the interpreter exits;
- ``os_exit``: the groups held, the rank ending with ``os._exit(0)`` as
  ``llm.train.distributed.end_rank_process`` does.

That leaves the race to chance. ``--hold-gil`` makes it (nearly) certain: the
rank leaves one async all_reduce of a large tensor to the gloo worker (handle and
tensor dropped), leaves text in stdout's buffer, and its last atexit callback
holds the GIL for 1 s in C (``usleep`` through ``ctypes.PyDLL``, so no bytecode
runs and the GIL is never handed over). The worker finishes the collective
meanwhile and waits for the GIL to release the tensor's Python object; the main
thread then starts finalization and first lets go of the GIL when it flushes
stdout, so the worker wakes up in a finalizing interpreter.

A rank that ends on a signal or prints "terminate called" counts as aborted.

``recipe``: the 2-process ZeRO-3 LoRA run of ``tests/train/test_launch.py``
(``accelerate launch --config_file recipes/accelerate/cpu-zero3.yaml -m
llm.train recipes/tiny-lora-zero3-cpu.yaml``, 2 steps) with
``CLINICAL_LLM_TEARDOWN=python``, so that the ranks go through interpreter
teardown instead of ``os._exit``, beside ``--load`` busy processes. Needs the
tests' tiny model and datasets: ``--assets`` holds ``tiny-clinical/`` and
``datasets/`` (a ``train-assets`` folder of a pytest run of tests/train).

Both run with core dumps allowed (``ulimit -c unlimited``; ``--no-cores`` turns
them off) and exit 1 where a rank aborted or a run failed; where the kernel's
``core_pattern`` is a relative name, ranks of ``recipe`` leave cores in the
repository root and ranks of ``gloo`` in ``--out``. Read one with
``gdb -batch -ex 'thread apply all bt' .venv/bin/python CORE``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ABORT_MARKS = ("terminate called", "SIGABRT", "Signal 6", "Fatal Python error: Aborted")
VARIANTS = ("held", "released", "os_exit")

_HELD: list[object] = []  # the groups, kept past main as DeepSpeed keeps them


def gloo_rank(variant: str, hold_gil: bool) -> None:
    """One rank of the ``gloo`` reproduction (MASTER_ADDR/PORT, RANK, WORLD_SIZE set)."""
    import atexit
    import ctypes

    if hold_gil:  # registered first, so it runs last, after every other atexit callback
        atexit.register(ctypes.PyDLL("libc.so.6").usleep, 1_000_000)
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    second = dist.new_group([0, 1])
    _HELD.extend([dist.group.WORLD, second])
    x = torch.ones(1000)
    for _ in range(5):
        dist.all_reduce(x)
        dist.all_reduce(x, group=second)
    dist.barrier()
    if hold_gil:
        dist.all_reduce(torch.ones(5_000_000), async_op=True)  # the worker holds the last ref
        sys.stdout.write("left in stdout's buffer")  # finalization's flush releases the GIL
    if variant == "released":
        _HELD.clear()
        del second
        dist.destroy_process_group()
    elif variant == "os_exit":
        sys.stdout.flush()
        os._exit(0)


def run_gloo(variant: str, hold_gil: bool, runs: int, port: int, out: Path) -> int:
    """Launch the two ranks ``runs`` times; returns the number of aborted ranks."""
    aborted = 0
    for i in range(runs):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2")
        env["PYTHONFAULTHANDLER"] = "1"
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "_rank", variant, str(int(hold_gil))],
                env=dict(env, RANK=str(rank)),
                cwd=out,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for rank in range(2)
        ]
        for rank, proc in enumerate(procs):
            text, _ = proc.communicate(timeout=300)
            if proc.returncode != 0 or any(m in text for m in ABORT_MARKS):
                aborted += 1
                first = text.strip().splitlines()[0] if text.strip() else ""
                print(f"{variant} run {i} rank {rank}: exit {proc.returncode}: {first}", flush=True)
    how = f"{variant}{' --hold-gil' if hold_gil else ''}"
    print(f"{how}: {aborted} aborted ranks in {runs} runs ({2 * runs} ranks)", flush=True)
    return aborted


def _recipe_argv(assets: Path, out: Path) -> list[str]:
    sets = [
        f"model.base={assets / 'tiny-clinical'}",
        f"data.dataset_dir={assets / 'datasets'}",
        f"training.output_dir={out}",
        "data.max_length=256",
        "training.logging_steps=1",
        "training.micro_batch_size=2",
        "training.gradient_accumulation_steps=1",
        "training.early_stopping_patience=null",
        "training.eval_every_steps=null",
        "training.cpu_threads=1",
        "training.max_steps=2",
        "data.max_train_examples=16",
        "tracking.backend=none",
    ]
    accelerate = Path(sys.executable).with_name("accelerate")
    argv = [str(accelerate), "launch", "--config_file", "recipes/accelerate/cpu-zero3.yaml"]
    argv += ["-m", "llm.train", "recipes/tiny-lora-zero3-cpu.yaml"]
    return argv + [arg for item in sets for arg in ("--set", item)]


def run_recipe(runs: int, load: int, assets: Path, out: Path) -> int:
    """Launch the recipe ``runs`` times beside ``load`` busy loops; returns the failed runs."""
    env = dict(os.environ)
    env.update(
        {
            "TORCH_EXTENSIONS_DIR": str(REPO / "build" / "torch_extensions"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
            "CLINICAL_LLM_TEARDOWN": "python",
        }
    )
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    failed = 0
    try:
        for i in range(runs):
            before = set(REPO.glob("core*"))
            log = out / f"run-{i}.log"
            start = time.monotonic()
            with log.open("w") as sink:
                code = subprocess.run(
                    _recipe_argv(assets, out / f"run-{i}"),
                    cwd=REPO,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                ).returncode
            text = log.read_text(errors="replace")
            marks = [m for m in ABORT_MARKS if m in text]
            cores = sorted(set(REPO.glob("core*")) - before)
            for core in cores:
                core.rename(out / f"run-{i}-{core.name}")
            bad = bool(code != 0 or marks or cores)
            failed += bad
            print(
                f"run {i}: exit {code}, {time.monotonic() - start:.0f} s, "
                f"marks {marks}, cores {len(cores)}" + ("  <-- FAILED" if bad else ""),
                flush=True,
            )
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    print(f"recipe: {failed} of {runs} runs failed (load {load})", flush=True)
    return failed


def main() -> int:
    if sys.argv[1:2] == ["_rank"]:
        gloo_rank(sys.argv[2], sys.argv[3] == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    gloo = sub.add_parser("gloo", help="two plain gloo ranks")
    gloo.add_argument("--variant", choices=VARIANTS, default="held")
    gloo.add_argument("--hold-gil", action="store_true", help="make the race (nearly) certain")
    gloo.add_argument("--runs", type=int, default=20)
    gloo.add_argument("--port", type=int, default=29710)
    gloo.add_argument("--out", type=Path, default=REPO / "build/teardown/gloo")
    recipe = sub.add_parser("recipe", help="the 2-process ZeRO-3 LoRA recipe")
    recipe.add_argument("--runs", type=int, default=10)
    recipe.add_argument("--load", type=int, default=2, help="busy-loop processes beside it")
    recipe.add_argument("--assets", type=Path, default=REPO / "build/teardown")
    recipe.add_argument("--out", type=Path, default=REPO / "build/teardown/recipe")
    for sub_parser in (gloo, recipe):
        sub_parser.add_argument(
            "--no-cores", action="store_true", help="no core dumps (a rank's is ~300 MB)"
        )
    args = parser.parse_args()
    core_limit = 0 if args.no_cores else resource.RLIM_INFINITY
    resource.setrlimit(resource.RLIMIT_CORE, (core_limit, core_limit))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "gloo":
        aborted = run_gloo(args.variant, args.hold_gil, args.runs, args.port, args.out)
    else:
        aborted = run_recipe(args.runs, args.load, args.assets, args.out)
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())
