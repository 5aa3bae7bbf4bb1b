"""How hard are the classification tasks? Reference predictors on the test split, with 95% CIs.

Run (about a minute on 2 cores for 2,000 patients)::

    .venv/bin/python scripts/bench_tasks.py --out build/bench_tasks.json
    .venv/bin/python scripts/bench_tasks.py --datasets build/demo/datasets \\
        --predictions demo=build/demo/eval --out build/bench_tasks.json

Without ``--datasets`` it builds a synthetic cohort and its task datasets the
way ``clinical-llm data synth`` and ``clinical-llm data build`` do (same
library calls; ``--work`` keeps them). For each classification task
(diagnosis, readmission) it scores on the test split: the majority class and
a bag-of-words logistic regression (word counts, and word 1-2-grams), both
fit on the train split; the rule that reads the label from the input
(:mod:`llm.data.synth.diagnosis_rule`, :mod:`llm.data.synth.readmission_reading`;
left out when the inputs are not the synthetic cohort's); and each
``--predictions NAME=DIR_OR_FILE`` from ``clinical-llm eval run``. Accuracy
intervals are 95% Wilson score intervals. With ``--bias`` (or ``--group``)
each predictor is also scored inside and outside that subgroup.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from llm.data.build import build_task_datasets, parse_split
from llm.data.synth import generate_cohort, parse_bias
from llm.data.synth.diagnosis_rule import predict_diagnosis
from llm.data.synth.readmission_reading import predict_readmission
from llm.data.tasks.difficulty import (
    PredictorScores,
    Score,
    TaskExample,
    bag_of_words_predictions,
    majority_predictions,
    model_scores,
    read_model_predictions,
    read_split,
    rule_predictions,
    score,
)
from llm.errors import BadInputError

TASKS = ("diagnosis", "readmission")
RULES: dict[str, Callable[[str], str]] = {
    "diagnosis": predict_diagnosis,
    "readmission": predict_readmission,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", type=Path, help="task datasets (data build output) to read")
    p.add_argument("--patients", type=int, default=2000, help="cohort size when building")
    p.add_argument("--seed", type=int, default=7, help="cohort and split seed when building")
    p.add_argument("--split", default="0.6,0.1,0.3", help="train,validation,test when building")
    p.add_argument("--bias", help="documentation bias when building, ATTR=VALUE:STRENGTH")
    p.add_argument("--group", help="subgroup to score apart, ATTR=VALUE (default: --bias's)")
    p.add_argument("--work", type=Path, help="folder to build the cohort and datasets in")
    p.add_argument(
        "--predictions",
        action="append",
        default=[],
        metavar="NAME=DIR_OR_FILE",
        help="eval run output folder (or predictions.jsonl) of a model; repeatable",
    )
    p.add_argument("--out", "--json", dest="out", type=Path, help="write the report as JSON here")
    return p.parse_args(argv)


def build_datasets(args: argparse.Namespace, work: Path) -> Path:
    """A synthetic cohort and its diagnosis and readmission datasets, built under ``work``."""
    bias = [parse_bias(args.bias)] if args.bias else []
    cohort = work / "cohort"
    generate_cohort(n_patients=args.patients, seed=args.seed, out_dir=cohort, bias=bias)
    datasets = work / "datasets"
    build_task_datasets(
        cohort / "records.jsonl",
        TASKS,
        datasets,
        split=parse_split(args.split),
        seed=args.seed,
    )
    return datasets


def task_report(
    task: str,
    datasets: Path,
    models: dict[str, Path],
    group: tuple[str, str] | None,
) -> list[PredictorScores]:
    """Every predictor's scores on one task's test split."""
    train, test = read_split(datasets, task, "train"), read_split(datasets, task, "test")

    def scored(name: str, predictions: list[str], examples: list[TaskExample]) -> PredictorScores:
        overall, by_group = score(predictions, examples, group=group)
        return PredictorScores(name, overall, by_group)

    rows = [
        scored("majority class", majority_predictions(train, test), test),
        scored("bag-of-words LR", bag_of_words_predictions(train, test), test),
        scored(
            "bag-of-words LR, 1-2-grams",
            bag_of_words_predictions(train, test, ngram_range=(1, 2)),
            test,
        ),
    ]
    try:
        rows.append(scored("rule on the record", rule_predictions(RULES[task], test), test))
    except BadInputError as err:
        print(f"{task}: rule left out ({err})", file=sys.stderr)
    for name, path in models.items():
        try:
            rows.append(model_scores(name, read_model_predictions(path, task), test, group=group))
        except BadInputError as err:
            print(f"{task}: {name} left out ({err})", file=sys.stderr)
    return rows


def format_score(s: Score) -> str:
    low, high = s.interval()
    return f"{s.accuracy:.3f} [{low:.3f}, {high:.3f}] (n={s.n})"


def print_table(report: dict[str, list[PredictorScores]]) -> None:
    for task, rows in report.items():
        groups = list(rows[0].by_group) if rows else []
        header = ["predictor", "accuracy [95% Wilson CI]", *groups]
        lines = [
            [r.name, format_score(r.overall), *(format_score(r.by_group[g]) for g in groups)]
            for r in rows
        ]
        widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=True)]
        print(f"\n{task}")
        for line in [header, *lines]:
            print("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = {}
    for item in args.predictions:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            raise SystemExit(f"--predictions {item!r}: expected NAME=DIR_OR_FILE")
        models[name] = Path(path)
    group_text = args.group or (args.bias.rpartition(":")[0] if args.bias else None)
    group: tuple[str, str] | None = None
    if group_text:
        attribute, _, value = group_text.partition("=")
        group = (attribute, value)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        datasets = args.datasets or build_datasets(args, work)
        report = {t: task_report(t, datasets, models, group) for t in TASKS}
    print_table(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "datasets": str(args.datasets) if args.datasets else None,
            "built": None
            if args.datasets
            else {"patients": args.patients, "seed": args.seed, "split": args.split},
            "bias": args.bias,
            "group": group_text,
            "interval": "95% Wilson score interval",
            "tasks": {t: [r.to_dict() for r in rows] for t, rows in report.items()},
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
