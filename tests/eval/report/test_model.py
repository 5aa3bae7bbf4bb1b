"""report.json follows docs/architecture.md exactly and is the typed report's serialisation;
report.md is readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.report.model import (
    TOP_LEVEL_KEYS,
    RunArgs,
    SubgroupReport,
    parse_report,
    read_report,
)
from eval.subgroups.analysis import SubgroupConfig, analyze_subgroups, make_config
from llm.errors import BadInputError
from tests.eval.synthetic import random_predictions, write_predictions

# written by `eval subgroups` before the report was typed (gates, significance, an
# intersection, small groups, undefined values, a model manifest): the contract as it was
FIXTURE = Path(__file__).parent / "fixtures" / "report.json"

METRICS = ["accuracy", "true_positive_rate", "false_positive_rate"]


def _run(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    rows = random_predictions(400, seed=0)
    for i, row in enumerate(rows):  # sex 'other' gets no positive reference: an undefined TPR
        if i < 40:
            row["demographics"]["sex"], row["reference"] = "other", "no"
        elif row["demographics"]["sex"] == "other":
            row["demographics"]["sex"] = "female"
    path = write_predictions(tmp_path / "pred" / "predictions.jsonl", rows)
    config = make_config(
        predictions=path,
        attributes=["sex", "age_band", "sex*race_ethnicity"],
        metrics=METRICS,
        positive_label="yes",
        bootstrap=50,
        out=tmp_path / "out",
        **overrides,
    )
    analyze_subgroups(config)
    return json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))


def test_report_json_keys_follow_the_contract(tmp_path: Path) -> None:
    report = _run(tmp_path)
    assert set(report) == {*TOP_LEVEL_KEYS, "notes"}
    assert report["metrics"] == METRICS and report["n"] == 400
    assert report["positive_label"] == "yes" and report["passed"] is True
    assert report["gates"] == []
    for metric in METRICS:  # proportions also say what they are a share of: "trials"
        assert set(report["overall"][metric]) == {"value", "ci", "trials"}
        assert len(report["overall"][metric]["ci"]) == 2
    trials = {m: report["overall"][m]["trials"] for m in METRICS}
    assert trials["accuracy"] == 400
    assert trials["true_positive_rate"] + trials["false_positive_rate"] == 400
    assert list(report["by_attribute"]) == ["sex", "age_band", "sex*race_ethnicity"]
    for attribute, block in report["by_attribute"].items():
        assert set(block) == {"groups", "disparity"}
        for group in block["groups"].values():
            assert set(group) == {"n", "small", *METRICS}
            for metric in METRICS:
                assert {"value", "ci"} <= set(group[metric])
        for metric in METRICS:
            assert {"difference", "ratio", "worst_group", "best_group"} <= set(
                block["disparity"][metric]
            )
            assert {"difference_ci", "ratio_ci"} <= set(block["disparity"][metric])
        assert set(block["disparity"]["equalized_odds_difference"]) == {"value", "ci"}, attribute
    intersection = report["by_attribute"]["sex*race_ethnicity"]["groups"]
    assert "female*Black" in intersection
    assert all(name.count("*") == 1 for name in intersection)


def test_undefined_values_are_null_with_a_note_and_small_groups_marked(tmp_path: Path) -> None:
    report = _run(tmp_path)
    other = report["by_attribute"]["sex"]["groups"]["other"]
    assert other["small"] is False and other["n"] >= 40
    assert other["true_positive_rate"]["value"] is None
    assert other["true_positive_rate"]["note"] == "no reference has the positive label"
    assert any("sex=other: true_positive_rate undefined" in note for note in report["notes"])
    unknown = report["by_attribute"]["age_band"]["groups"]["unknown"]
    assert unknown["small"] is (unknown["n"] < 30)
    text = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "## sex*race_ethnicity" in text and "(small)" in text
    assert "Equalized odds difference" in text and "n/a" in text


def test_manifest_and_model_manifest_beside_the_predictions(tmp_path: Path) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "manifest.json").write_text('{"kind": "export", "model": "tiny"}')
    report = _run(tmp_path, seed=5)
    manifest = report["manifest"]
    assert manifest["seed"] == 5 and manifest["args"]["bootstrap"] == 50
    assert manifest["counts"] == {"read": 400, "used": 400, "rejected": 0}
    assert len(manifest["predictions"]["sha256"]) == 64
    assert manifest["model_manifest"]["contents"] == {"kind": "export", "model": "tiny"}
    assert {"numpy", "scipy", "python"} <= set(manifest["libraries"])
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest


def test_a_report_written_before_the_typed_model_round_trips_unchanged() -> None:
    text = FIXTURE.read_text(encoding="utf-8")
    report = read_report(FIXTURE)
    assert report.to_json() == json.loads(text)
    assert report.to_json_text() == text  # same keys, same order, same bytes


def test_the_fixture_exercises_every_optional_part() -> None:
    report = read_report(FIXTURE)
    sex = report.by_attribute["sex"]
    assert sex.significance and sex.equalized_odds is not None
    assert any(g.group for g in report.gates) and any(g.note for g in report.gates)
    assert any(e.note for e in sex.groups["other"].metrics.values())
    assert any(g.small for b in report.by_attribute.values() for g in b.groups.values())
    assert report.manifest.model_manifest is not None and report.manifest.args.bootstrap == 60


def test_a_fresh_report_round_trips_through_its_json(tmp_path: Path) -> None:
    for overrides in ({"seed": 1}, {"permutations": 20, "significance": True}):
        written = _run(tmp_path, **overrides)
        assert SubgroupReport.model_validate(written).to_json() == written


def test_the_recorded_arguments_follow_the_config() -> None:
    assert list(RunArgs.model_fields) == list(SubgroupConfig.model_fields)


def test_what_is_not_a_report_is_refused_with_the_place() -> None:
    with pytest.raises(BadInputError, match="missing metrics"):
        parse_report({"overall": {}, "by_attribute": {}}, "r.json")
    bad = {"metrics": [], "n": 1, "overall": {"accuracy": {"value": "high"}}, "by_attribute": {}}
    with pytest.raises(BadInputError, match=r"r\.json: not a subgroup report: overall\.accuracy"):
        parse_report(bad, "r.json")
