"""``clinical-llm eval subgroups`` end to end through ``llm.cli.main``: outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.cli import main
from tests.eval.synthetic import random_predictions, write_predictions

METRICS = "accuracy,true_positive_rate,false_positive_rate"
ATTRIBUTES = "sex,age_band,race_ethnicity,payer,sex*race_ethnicity"


def _args(predictions: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "subgroups",
        str(predictions),
        "--attributes",
        ATTRIBUTES,
        "--metrics",
        METRICS,
        "--positive-label",
        "yes",
        "--min-group-size",
        "30",
        "--bootstrap",
        "200",
        "--seed",
        "0",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture
def predictions(tmp_path: Path) -> Path:
    return write_predictions(tmp_path / "predictions.jsonl", random_predictions(1200, seed=0))


def _gates(tmp_path: Path, threshold: float) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(
        f"""
- name: accuracy gap
  attribute: "*"
  metric: accuracy
  rule: max_difference
  threshold: {threshold}
  use: ci_upper
- {{metric: true_positive_rate, rule: min_value, threshold: 0.5, use: ci_lower}}
""",
        encoding="utf-8",
    )
    return path


def test_passing_gates_exit_0_and_write_reports(
    tmp_path: Path, predictions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = main(_args(predictions, out, "--gates", str(_gates(tmp_path, 0.9)), "--significance"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "read 1200 = used 1200 + rejected 0" in captured.err
    assert f"reports in {out}" in " ".join(captured.out.split())
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True and len(report["gates"]) == 6  # 5 attributes + overall
    assert "significance" in report["by_attribute"]["race_ethnicity"]
    assert (out / "report.md").is_file() and (out / "manifest.json").is_file()


def test_failing_gate_exits_1_after_writing_reports(
    tmp_path: Path, predictions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = main(_args(predictions, out, "--gates", str(_gates(tmp_path, 0.01))))
    assert code == 1
    assert "gate(s) failed: accuracy gap" in " ".join(capsys.readouterr().err.split())
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is False
    failed = {g["attribute"] for g in report["gates"] if not g["passed"]}
    assert "race_ethnicity" in failed  # the 10-point accuracy gap of the synthetic data
    assert "**FAIL**" in (out / "report.md").read_text()


def test_same_seed_gives_the_same_report(tmp_path: Path, predictions: Path) -> None:
    reports = []
    for name in ("a", "b"):
        assert main(_args(predictions, tmp_path / name)) == 0
        report = json.loads((tmp_path / name / "report.json").read_text())
        for key in ("started_at", "finished_at", "args"):
            report["manifest"].pop(key)
        reports.append(report)
    assert reports[0] == reports[1]


def test_bad_line_exits_2_naming_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = random_predictions(50, seed=1)
    rows[6]["score"] = "high"
    path = write_predictions(tmp_path / "predictions.jsonl", rows)
    assert main(_args(path, tmp_path / "out")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{path}:7: score: expected a number, got str" in err
    assert "read 7 = used 6 + rejected 1" in err
    assert not (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--metrics", "acuracy"], "did you mean 'accuracy'"),
        (["--metrics", "f1", "--positive-label", ""], None),
        (["--confidence", "1.5"], "--confidence"),
        (["--attributes", "sex,sexx"], "did you mean 'sex'"),
        (["--positive-label", "Yes"], "occurs in no reference or prediction"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path,
    predictions: Path,
    capsys: pytest.CaptureFixture[str],
    change: list[str],
    message: str | None,
) -> None:
    args = _args(predictions, tmp_path / "out")
    for option, value in zip(change[::2], change[1::2], strict=True):
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    assert main(args) == 2
    if message:
        assert message in " ".join(capsys.readouterr().err.split())


def test_bad_gates_file_exits_2_before_reading(
    tmp_path: Path, predictions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gates = tmp_path / "gates.yaml"
    gates.write_text("- {metric: accuracy, rule: max_difference, threshold: 0.1}\n")
    assert main(_args(predictions, tmp_path / "out", "--gates", str(gates))) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{gates}:1: [0]: rule max_difference compares groups" in err
    assert "read" not in err


def test_metric_needing_positive_label(tmp_path: Path, predictions: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    args = _args(predictions, tmp_path / "out")
    at = args.index("--positive-label")
    del args[at : at + 2]
    assert main(args) == 2
    assert "needs --positive-label" in capsys.readouterr().err


def test_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "subgroups", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--attributes", "--metrics", "--min-group-size", "--bootstrap", "--gates"):
        assert option in text
    assert "intersection" in text
