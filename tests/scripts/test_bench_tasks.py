"""scripts/bench_tasks.py builds a small cohort, scores every predictor, reads model predictions."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scripts.fixtures import run_script


def test_small_cohort_report(tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = run_script(
        "bench_tasks",
        ["--patients", "80", "--seed", "3", "--split", "0.5,0.1,0.4", "--work", str(work)],
        tmp_path / "first.json",
    )
    assert first["interval"] == "95% Wilson score interval"
    diagnosis = {row["predictor"]: row["overall"] for row in first["tasks"]["diagnosis"]}
    assert list(diagnosis) == [
        "majority class",
        "bag-of-words LR",
        "bag-of-words LR, 1-2-grams",
        "rule on the record",
    ]
    assert diagnosis["rule on the record"]["accuracy"] == 1.0
    n = diagnosis["majority class"]["n"]
    assert n == 32 and all(row["n"] == n for row in diagnosis.values())
    for row in diagnosis.values():
        low, high = row["ci95"]
        assert 0.0 <= low <= row["accuracy"] <= high <= 1.0
    readmission = {row["predictor"]: row["overall"] for row in first["tasks"]["readmission"]}
    assert readmission["rule on the record"]["accuracy"] == 1.0

    # a model's eval-run predictions, read back from the datasets just built
    eval_dir = tmp_path / "eval" / "diagnosis"
    eval_dir.mkdir(parents=True)
    rows = [
        json.loads(x) for x in (work / "datasets/diagnosis/test.jsonl").read_text().splitlines()
    ]
    with (eval_dir / "predictions.jsonl").open("w") as fh:
        for i, row in enumerate(rows):
            prediction = row["answer"] if i % 2 == 0 else "sepsis_not_a_label"
            fh.write(json.dumps({"id": row["id"], "prediction": prediction}) + "\n")
    second = run_script(
        "bench_tasks",
        [
            *("--datasets", str(work / "datasets"), "--group", "sex=female"),
            *("--predictions", f"half={tmp_path / 'eval'}"),
        ],
        tmp_path / "second.json",
    )
    model = {row["predictor"]: row for row in second["tasks"]["diagnosis"]}["half"]
    assert model["overall"]["correct"] == (len(rows) + 1) // 2
    groups = model["by_group"]
    assert groups["sex=female"]["n"] + groups["others"]["n"] == len(rows)
