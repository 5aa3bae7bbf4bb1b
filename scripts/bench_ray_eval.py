"""Batch evaluation speed: the local runner in one process against Ray Data with 1 and 2 actors.

    .venv/bin/python scripts/bench_ray_eval.py --model MODEL_DIR --dataset-dir DATASETS
        [--tasks diagnosis,readmission_loglik] [--split train] [--limit N] [--batch-size 4]
        [--threads 1]
        [--ray-address local] [--out build/bench_ray_eval]

Runs ``eval run``'s library path (:func:`eval.run.run_suite`, bootstrap off) three times on
the same examples:

* ``one process``: the local runner (``--model``) with torch on ``--threads`` threads;
* ``ray, 1 actor`` and ``ray, 2 actors``: the same with ``--ray-address`` and
  ``--cpus-per-worker`` = ``--threads`` (a ``local`` Ray with 2 of those per actor is started
  once, before the clock, and shared). Equal thread counts make equal bytes (docs/evaluation.md).

Each arm writes to the same folder in turn (the reports record their paths), moved aside
after. A task's time is its prediction step as ``summary.json`` records it (``seconds``:
the model work, and on Ray the actors' start and model load, once per task); the arm's time
is the whole ``run_suite`` call. Prints examples/s side by side and checks that every arm
wrote the same ``predictions.jsonl`` and ``report.md`` bytes with the same read counts;
exits 1 where they differ.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from eval.run import plan_suite, prepare_out, run_suite  # noqa: E402
from eval.runners import make_runner  # noqa: E402
from eval.tasks.suite import load_suite  # noqa: E402
from llm.ray_cluster import ray_session  # noqa: E402

COMPARED = ("predictions.jsonl", "report.md")


def _arm(args: argparse.Namespace, suite_path: Path, out: Path, **ray: Any) -> dict[str, Any]:
    """One ``run_suite`` call; its summary, read counts, wall time and compared files."""
    suite = load_suite(suite_path, [])
    plans = plan_suite(suite, runner_kind="local", images=False, loglikelihood=True)
    runner = make_runner(model=str(args.model), batch_size=args.batch_size, **ray)
    torch.set_num_threads(args.threads)  # the one process's; an actor sets its own
    prepare_out(out)
    started = time.perf_counter()
    try:
        result = run_suite(suite, suite_path, plans, runner, out)
    finally:
        runner.close()
    seconds = time.perf_counter() - started
    files = {
        f"{task}/{name}": (out / task / name).read_bytes()
        for task in args.tasks.split(",")
        for name in COMPARED
    }
    counts = [(s.path, s.read, s.used, s.rejected) for s in result.stats]
    return {"summary": result.summary, "seconds": seconds, "files": files, "counts": counts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder (local runner)")
    parser.add_argument("--dataset-dir", type=Path, required=True, help="`data build` output")
    parser.add_argument("--tasks", default="diagnosis,readmission_loglik")
    parser.add_argument("--split", default="train", help="train: the largest split")
    parser.add_argument("--limit", type=int, help="the first N examples of each task")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process/actor")
    parser.add_argument("--ray-address", default="local")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench_ray_eval")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    suite_path = args.out / "suite.yaml"
    suite_path.write_text(
        f"suite: bench-ray-eval\ndataset_dir: {args.dataset_dir.resolve()}\n"
        f"split: {args.split}\ntasks: [{args.tasks}]\nattributes: [sex]\n"
        "bootstrap: 0\nmin_group_size: 1\n" + (f"limit: {args.limit}\n" if args.limit else ""),
        encoding="utf-8",
    )
    run_dir = args.out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted run's
    arms: list[tuple[str, dict[str, Any]]] = [("one process", _arm(args, suite_path, run_dir))]
    shutil.rmtree(run_dir)
    started = time.perf_counter()
    with ray_session(args.ray_address, num_cpus=2 * args.threads):
        ray_start = time.perf_counter() - started
        for workers in (1, 2):
            ray = {"ray_address": args.ray_address, "cpus_per_worker": args.threads}
            arm = _arm(args, suite_path, run_dir, workers=workers, **ray)
            arms.append((f"ray, {workers} actor{'s' if workers > 1 else ''}", arm))
            shutil.rmtree(run_dir)

    base = arms[0][1]
    tasks = [(e["task"], e["n"]) for e in base["summary"]["tasks"]]
    print(
        f"tasks {', '.join(f'{t} ({n})' for t, n in tasks)}, split {args.split}, batch size "
        f"{args.batch_size}, {args.threads} torch thread(s) per process or actor; "
        f"{os.cpu_count()} CPUs; ray {args.ray_address} started in "
        f"{ray_start:.1f} s (not counted below)"
    )
    header = "".join(f"{t + ' ex/s':>26}" for t, _ in tasks)
    print(f"{'arm':<16}{'seconds':>9}{'ex/s':>8}{header}  same output and counts")
    all_same = True
    for name, arm in arms:
        same = arm["files"] == base["files"] and arm["counts"] == base["counts"]
        all_same &= same
        entries = arm["summary"]["tasks"]
        total = sum(e["n"] for e in entries)
        per_task = "".join(f"{e['examples_per_s']:>26.2f}" for e in entries)
        print(
            f"{name:<16}{arm['seconds']:>9.1f}{total / arm['seconds']:>8.2f}{per_task}"
            f"  {'yes' if same else 'NO'}"
        )
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
