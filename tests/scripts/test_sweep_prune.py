"""scripts/sweep_prune.py: pruned variants at several sparsities, one report, first crossings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401  (fixture)
from tests.scripts.fixtures import load_script, run_script

sweep = load_script("sweep_prune")
BASE_DIAGNOSIS = "evals/base/diagnosis_loglik/predictions.jsonl"


def _change(change: float, ci: tuple[float, float] | None, *, small: bool = False) -> dict:
    return {"n": 20, "small": small, "base": 0.5, "variant": 0.5 + change, "change": change,
            "ci": None if ci is None else list(ci)}  # fmt: skip


def _answers(predictions: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line]
    return [(row["id"], row["prediction"]) for row in rows]


def _variant(sparsity: float, overall: dict, groups: dict[str, dict]) -> dict[str, Any]:
    return {
        "name": f"prune-unstructured-{sparsity:g}",
        "compression": {"method": "prune-unstructured", "sparsity": sparsity},
        "tasks": [
            {
                "task": "diagnosis_loglik",
                "overall": overall,
                "by_attribute": {"sex": groups},
                "worst_group": None,
            }
        ],
    }


def test_crossing_follows_the_gate_rule_for_each_judge() -> None:
    loss = _change(-0.05, (-0.09, -0.03))
    unsure = _change(-0.05, (-0.12, 0.01))
    for judge, expected in {"ci": (True, False), "ci_conservative": (True, True)}.items():
        assert (sweep.crosses(loss, margin=0.02, judge=judge),
                sweep.crosses(unsure, margin=0.02, judge=judge)) == expected  # fmt: skip
    assert sweep.crosses(unsure, margin=0.02, judge="point")
    assert not sweep.crosses(_change(-0.01, None), margin=0.02, judge="point")
    # no interval: a CI judge cannot pass it, as the gate does
    assert sweep.crosses(_change(0.0, None), margin=0.02, judge="ci")


def test_first_crossings_give_the_subgroup_before_the_overall_score() -> None:
    held = _change(-0.01, (-0.03, 0.0))
    report = {
        "variants": [
            {"name": "int8-dynamic", "compression": {"method": "int8-dynamic"}, "tasks": []},
            _variant(0.5, _change(-0.1, (-0.15, -0.05)), {"female": _change(-0.2, (-0.3, -0.1))}),
            _variant(0.3, held, {"female": _change(-0.1, (-0.2, -0.05))}),
            _variant(0.1, held, {"female": held, "male": _change(-0.2, None, small=True)}),
        ]
    }
    rows = sweep.sweep_rows([report], margin=0.02, judge="ci")
    assert [r["sparsity"] for r in rows] == [0.1, 0.3, 0.5]  # the int8 variant is not swept
    assert [r["groups_crossing"] for r in rows] == [[], ["sex=female"], ["sex=female"]]
    first = sweep.first_crossings(rows)
    assert (first["subgroup"], first["overall"]) == (0.3, 0.5)
    assert first["by_task"]["diagnosis_loglik"] == {"subgroup": 0.3, "overall": 0.5}


def test_sparsities_are_checked() -> None:
    assert sweep.parse_sparsities("0.5, 0.1,0.5") == [0.1, 0.5]
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        sweep.parse_sparsities("0.1,1.0")


@pytest.mark.slow
def test_sweeps_the_tiny_model_through_the_cli(eval_assets: EvalAssets, tmp_path: Path) -> None:  # noqa: F811
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "suite: sweep-test\ntasks: [diagnosis_loglik, readmission_loglik]\n"
        "attributes: [sex]\nmin_group_size: 2\nbootstrap: 50\n"
    )
    out = tmp_path / "sweep"
    argv = ["--model", str(eval_assets.tiny), "--datasets", str(eval_assets.datasets)]
    argv += ["--suite", str(suite), "--sparsity", "0.2,0.6", "--limit", "6"]
    argv += ["--bootstrap", "100", "--jobs", "2", "--out", str(out)]
    result = run_script("sweep_prune", argv, tmp_path / "sweep.json")
    assert [(r["sparsity"], r["task"]) for r in result["rows"]] == [
        (s, t) for s in (0.2, 0.6) for t in ("diagnosis_loglik", "readmission_loglik")
    ]
    for row in result["rows"]:
        # --limit caps the examples; the test split of the 40-patient cohort may hold fewer
        assert 0 < row["overall"]["n"] <= 6 and row["overall"]["ci"] is not None
        assert abs(row["zero_share"] - row["sparsity"]) < 0.01
        assert set(row["groups_crossing"]) <= {"sex=female", "sex=male", "sex=unknown"}
    assert set(result["first_crossing"]) == {"overall", "subgroup", "by_task"}
    # --jobs 2: one report per sparsity, run side by side, each against the same base answers
    reports = [json.loads(Path(p).read_text()) for p in result["reports"]]
    names = ["prune-unstructured-0.2", "prune-unstructured-0.6"]
    assert [[v["name"] for v in r["variants"]] for r in reports] == [[n] for n in names]
    assert [argv[1:3] for argv in result["commands"]] == [["compress", "report"]] * 2
    base_answers = [_answers(out / "reports" / name / BASE_DIAGNOSIS) for name in names]
    assert base_answers[0] == base_answers[1]
    # reading the reports again gives the same sweep without running anything
    again = run_script("sweep_prune", ["--report", *result["reports"]], tmp_path / "again.json")
    assert again["rows"] == result["rows"] and again["commands"] is None
