"""``clinical-llm data import fhir|mimic``: exit codes, counts, output that validates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llm.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FHIR = FIXTURES / "fhir"
MIMIC = FIXTURES / "mimic"


def test_fhir_import_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "records.jsonl"
    assert main(["data", "import", "fhir", str(FHIR / "bundles"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "read 2 = used 2 + rejected 0" in captured.err
    assert "Observation[social-history] 1" in captured.err  # skipped kinds are reported
    assert f"wrote 2 FHIR record(s) to {out}" in captured.out
    assert main(["data", "validate", str(out)]) == 0  # asset files exist beside it


def test_fhir_bad_bundle_exits_2_naming_the_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["data", "import", "fhir", str(FHIR / "broken"), "--out", str(tmp_path / "r.jsonl")]
    )
    assert code == 2
    assert "entry[3] (Observation/obs-7): valueQuantity.value" in capsys.readouterr().err


def test_fhir_skip_invalid_writes_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    shutil.copytree(FHIR / "bundles", folder)
    shutil.copy(FHIR / "broken" / "p3-bad-value.json", folder)
    rejects = tmp_path / "rejects.jsonl"
    args = [
        "data",
        "import",
        "fhir",
        str(folder),
        "--out",
        str(tmp_path / "r.jsonl"),
        "--skip-invalid",
        "--rejects",
        str(rejects),
    ]
    assert main(args) == 0
    assert "read 3 = used 2 + rejected 1" in capsys.readouterr().err
    assert "Observation/obs-7" in rejects.read_text()


def test_rejects_without_skip_invalid_is_a_usage_error(tmp_path: Path) -> None:
    args = [
        "data",
        "import",
        "fhir",
        str(FHIR / "bundles"),
        "--out",
        str(tmp_path / "r.jsonl"),
        "--rejects",
        str(tmp_path / "rej.jsonl"),
    ]
    assert main(args) == 2


def test_mimic_import_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "records.jsonl"
    args = [
        "data",
        "import",
        "mimic",
        str(MIMIC / "notes.csv"),
        "--patients",
        str(MIMIC / "patients.csv"),
        "--admissions",
        str(MIMIC / "admissions.csv"),
        "--diagnoses",
        str(MIMIC / "diagnoses_icd.csv"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "read 3 = used 3 + rejected 0" in captured.err
    assert f"wrote 3 MIMIC record(s) to {out}" in captured.out
    assert main(["data", "validate", str(out)]) == 0


def test_mimic_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        "data",
        "import",
        "mimic",
        str(MIMIC / "broken" / "notes.csv"),
        "--patients",
        str(MIMIC / "patients.csv"),
        "--out",
        str(tmp_path / "r.jsonl"),
    ]
    assert main(base) == 2
    assert "notes.csv:6: charttime: not an ISO time" in capsys.readouterr().err
    assert main([*base, "--skip-invalid"]) == 0
    assert "read 4 = used 1 + rejected 3" in capsys.readouterr().err
