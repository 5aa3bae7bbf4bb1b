"""``clinical-llm data deid``: exit codes, outputs, and no PHI in anything it prints or logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from llm.cli import main
from tests.data.deid.conftest import KEY, Cohort, leaked_phi


@pytest.fixture(autouse=True)
def _key_and_cache(monkeypatch: pytest.MonkeyPatch, spacy_cache: Path) -> None:
    monkeypatch.setenv("CLINICAL_LLM_CACHE", str(spacy_cache.parent / "cli-cache"))
    monkeypatch.delenv("CLINICAL_LLM_DEID_KEY", raising=False)


def test_deid_with_evaluation_exits_0(
    cohort: Cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_bytes(KEY)
    out = tmp_path / "out" / "records.jsonl"
    args = ["--key-file", str(key), "--evaluate", "--min-recall", "0.98"]
    code = main(["data", "deid", str(cohort.records), str(out), *args])
    captured = capsys.readouterr()
    assert code == 0
    assert "read 2 = used 2 + rejected 0" in captured.err
    assert f"-> {out}" in captured.out and "deid_eval.json" in captured.out
    report = json.loads((out.parent / "deid_eval.json").read_text())
    assert report["overall"]["recall"] == 1.0 and report["by_entity"]["NAME"]["gold"] == 9
    assert "not be reproducible" not in captured.err


def test_recall_below_min_recall_exits_1(cohort: Cohort, tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"
    lines = cohort.spans.read_text().splitlines()
    first = json.loads(lines[0])
    text = json.loads(cohort.records.read_text().splitlines()[0])["encounters"][0]["notes"][0][
        "text"
    ]
    start = text.index("shortness")  # not PHI, so never detected: recall drops below 1
    first["spans"].append({"start": start, "end": start + 9, "entity_type": "NAME"})
    spans.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    out = tmp_path / "out" / "records.jsonl"
    code = main(
        [
            "data",
            "deid",
            str(cohort.records),
            str(out),
            "--spans",
            str(spans),
            "--min-recall",
            "1.0",
        ]
    )
    assert code == 1
    assert json.loads((out.parent / "deid_eval.json").read_text())["overall"]["recall"] < 1.0


@pytest.mark.parametrize(
    "args",
    [
        ["--strategy", "redact"],
        ["--min-recall", "1.5"],
        ["--workers", "0"],
        ["--key-file", "/nonexistent/key"],
        ["--spans", "/nonexistent/spans.jsonl"],
    ],
)
def test_bad_input_exits_2(cohort: Cohort, tmp_path: Path, args: list[str]) -> None:
    assert main(["data", "deid", str(cohort.records), str(tmp_path / "o" / "r.jsonl"), *args]) == 2


def test_missing_input_and_out_beside_in_exit_2(cohort: Cohort, tmp_path: Path) -> None:
    assert (
        main(["data", "deid", str(tmp_path / "none.jsonl"), str(tmp_path / "o" / "r.jsonl")]) == 2
    )
    assert (
        main(["data", "deid", str(cohort.records), str(cohort.records.parent / "deid.jsonl")]) == 2
    )


def test_no_phi_in_output_logs_or_report(
    cohort: Cohort,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Canary: every PHI string of the input is looked for in everything the run says."""
    with cohort.records.open("a") as fh:  # a bad line too, so the error path speaks
        note = {"note_id": "x", "type": "other", "text": "Eleanor Whitfield"}
        fh.write(
            json.dumps(
                {"patient_id": "P000003", "encounters": [{"encounter_id": "E1", "notes": [note]}]}
            )
        )
        fh.write("\n")
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out" / "records.jsonl"
    code = main(
        [
            "data",
            "deid",
            str(cohort.records),
            str(out),
            "--evaluate",
            "--skip-invalid",
            "--workers",
            "2",
        ]
    )
    captured = capfd.readouterr()
    assert code == 0
    assert "not be reproducible" in captured.err  # no key given: warned, never printed
    said = captured.out + captured.err + caplog.text + (out.parent / "deid_eval.json").read_text()
    assert "read 3 = used 2 + rejected 1" in said
    # the run prints its paths, and pytest numbers its temporary folders
    # (/tmp/pytest-of-root/pytest-92/...): that number is not the patient's age
    assert leaked_phi(said.replace(str(tmp_path), "<tmp>")) == []
    assert "Whitfield" not in out.read_text()
    # the failing path: a stopped run names file, line and field, but not the text
    code = main(["data", "deid", str(cohort.records), str(tmp_path / "o2" / "r.jsonl")])
    captured = capfd.readouterr()
    assert code == 2 and "records.jsonl:3" in captured.err
    assert leaked_phi((captured.out + captured.err).replace(str(tmp_path), "<tmp>")) == []
