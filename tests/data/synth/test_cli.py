"""``clinical-llm data synth`` end to end through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.cli import main
from llm.data.io import read_records


def test_synth_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort"
    argv = [
        "data",
        "synth",
        "--patients",
        "5",
        "--seed",
        "9",
        "--out",
        str(out),
        "--bias",
        "race_ethnicity=White:0.5",
        "--bias",
        "sex=male:0.2",
        "--workers",
        "1",
    ]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert str(out) in summary and "5 patients" in summary
    assert "race_ethnicity=White:0.5" in summary
    records, stats = read_records(out / "records.jsonl")
    assert len(records) == 5 and stats.rejected == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["args"]["bias"] == ["race_ethnicity=White:0.5", "sex=male:0.2"]
    assert main(["data", "validate", str(out / "records.jsonl")]) == 0


@pytest.mark.parametrize(
    "bias", ["race_ethnicity=Black", "colour=Black:0.3", "race_ethnicity=Black:2"]
)
def test_bad_bias_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], bias: str) -> None:
    argv = [
        "data",
        "synth",
        "--patients",
        "2",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "c"),
        "--bias",
        bias,
    ]
    assert main(argv) == 2
    assert "ATTR=VALUE:STRENGTH" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing written before the arguments are checked
