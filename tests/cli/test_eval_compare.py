"""``clinical-llm eval compare`` end to end on real ``eval subgroups`` reports: exit codes 0/1/2,
the printed regressions, compare.json/compare.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.cli import main
from llm.cli.common import out_console
from tests.eval.synthetic import random_predictions, write_predictions

METRICS = "accuracy,false_positive_rate"


def _subgroups(tmp_path: Path, name: str, gap: float, metrics: str = METRICS) -> Path:
    """A real report folder; the same seed gives the same patients, ``gap`` degrades Black."""
    predictions = write_predictions(
        tmp_path / f"{name}.jsonl", random_predictions(1200, seed=0, gap=gap)
    )
    out = tmp_path / name
    args = ["eval", "subgroups", str(predictions), "--attributes", "sex,race_ethnicity"]
    args += ["--metrics", metrics, "--positive-label", "yes", "--bootstrap", "100"]
    assert main([*args, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    return {
        "base": _subgroups(root, "base", gap=0.0),
        "worse": _subgroups(root, "worse", gap=0.3),
        "accuracy_only": _subgroups(root, "accuracy_only", gap=0.0, metrics="accuracy"),
    }


def test_a_real_regression_exits_1_and_is_printed_first(
    reports: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a wide console, so that table cells are not folded (undone exactly: back to None)
    monkeypatch.setattr(out_console, "_width", 200)
    out = tmp_path / "cmp"
    code = main(
        [
            "eval",
            "compare",
            str(reports["base"] / "report.json"),
            str(reports["worse"] / "report.json"),
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1, captured.err
    text = " ".join(captured.out.split())
    assert text.index("Regressions") < text.index("Clear improvements")
    assert "race_ethnicity=Black" in text
    assert f"{out}/ (compare.json, compare.md)" in text
    assert "outside the intervals" in captured.err
    data = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    flagged = {(r["attribute"], r["group"], r["metric"]) for r in data["regressions"]}
    assert ("race_ethnicity", "Black", "accuracy") in flagged
    assert ("race_ethnicity", None, "accuracy") in flagged  # the gap widened
    # the other races' predictions are identical: nothing there may be flagged
    assert not any(r["group"] in ("Asian", "Hispanic", "White") for r in data["regressions"])
    assert (out / "compare.md").is_file()


def test_the_same_report_exits_0(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # a folder works as well as its report.json
    code = main(["eval", "compare", str(reports["base"]), str(reports["base"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Regressions: none" in captured.out
    assert "no regression (no --out: nothing written)" in " ".join(captured.out.split())


def test_a_looser_threshold_lets_the_regression_pass(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "compare", str(reports["base"]), str(reports["worse"])]
    assert main([*args, "--max-regression", "0.9"]) == 0


def test_mismatched_metrics_exit_2_and_say_which(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "compare", str(reports["base"]), str(reports["accuracy_only"])]
    assert main(args) == 2
    assert "only in base: false_positive_rate" in capsys.readouterr().err
    assert main([*args, "--metrics", "accuracy"]) == 0


def test_unreadable_report_exits_2(
    reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "report.json"
    broken.write_text("not json", encoding="utf-8")
    assert main(["eval", "compare", str(reports["base"]), str(broken)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["eval", "compare", str(tmp_path / "nope.json"), str(broken)]) == 2
    assert "nope.json: subgroup report not found" in capsys.readouterr().err


def test_subgroups_also_writes_the_html_page(reports: dict[str, Path]) -> None:
    page = (reports["base"] / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "race_ethnicity" in page
