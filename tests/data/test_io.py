from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.data.io import read_records, record_to_json, write_records
from llm.data.schema import PatientRecord
from llm.errors import BadInputError, RecordError
from tests.conftest import minimal_record


def test_round_trip_is_byte_stable(tmp_path: Path, write_jsonl) -> None:  # type: ignore[no-untyped-def]
    src = write_jsonl([minimal_record("A"), minimal_record("B")])
    records, stats = read_records(src)
    assert [r.patient_id for r in records] == ["A", "B"]
    out = tmp_path / "out" / "again.jsonl"
    assert write_records(out, records) == 2
    again, _ = read_records(out)
    assert [record_to_json(r) for r in again] == [record_to_json(r) for r in records]
    assert out.read_bytes() == (tmp_path / "out" / "again.jsonl").read_bytes()
    assert (stats.read, stats.used, stats.rejected) == (2, 2, 0)


def test_bad_json_names_file_and_line(write_jsonl) -> None:  # type: ignore[no-untyped-def]
    src = write_jsonl([minimal_record("A"), "{not json"])
    with pytest.raises(RecordError) as info:
        read_records(src)
    err = info.value
    assert (err.path, err.line, err.field) == (str(src), 2, "<line>")
    assert str(err).startswith(f"{src}:2: <line>: not valid JSON")


def test_mistyped_field_is_located(write_jsonl) -> None:  # type: ignore[no-untyped-def]
    bad = minimal_record()
    bad["encounters"][0]["labs"][0]["value"] = [1, 2]
    src = write_jsonl([bad])
    with pytest.raises(RecordError) as info:
        read_records(src)
    assert info.value.line == 1
    assert info.value.field.startswith("encounters[0].labs[0].value")


def test_missing_required_field_is_located(write_jsonl) -> None:  # type: ignore[no-untyped-def]
    bad = minimal_record()
    del bad["encounters"][0]["notes"][0]["text"]
    src = write_jsonl([bad])
    with pytest.raises(RecordError, match=r":1: encounters\[0\]\.notes\[0\]\.text: Field required"):
        read_records(src)


def test_missing_asset_file_is_located(tmp_path: Path, write_jsonl) -> None:  # type: ignore[no-untyped-def]
    rec = minimal_record()
    rec["encounters"][0]["images"] = [{"path": "images/x.dcm", "modality": "DX", "format": "dicom"}]
    src = write_jsonl([rec])
    with pytest.raises(RecordError, match=r"encounters\[0\]\.images\[0\]\.path: file not found"):
        read_records(src)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.dcm").write_bytes(b"x")
    records, _ = read_records(src)
    assert len(records) == 1
    assert len(read_records(src, check_assets=False)[0]) == 1


def test_skip_invalid_writes_rejects_and_counts_reconcile(tmp_path: Path, write_jsonl) -> None:  # type: ignore[no-untyped-def]
    bad = minimal_record("B")
    bad["demographics"]["sex"] = "F"
    bad["labels"]["triage_level"] = 9
    src = write_jsonl([minimal_record("A"), bad, "", "[1, 2]", minimal_record("C")])
    rejects = tmp_path / "rej" / "rejects.jsonl"
    records, stats = read_records(src, skip_invalid=True, rejects_path=rejects)
    assert [r.patient_id for r in records] == ["A", "C"]
    assert (stats.read, stats.used, stats.rejected) == (4, 2, 2)  # the blank line is not a record
    assert stats.summary().endswith("read 4 = used 2 + rejected 2")
    rows = [json.loads(x) for x in rejects.read_text().splitlines()]
    # both problems of line 2 are written, then line 4
    assert [(r["line"], r["field"]) for r in rows] == [
        (2, "demographics.sex"),
        (2, "labels.triage_level"),
        (4, "<line>"),
    ]
    assert json.loads(rows[0]["raw"])["patient_id"] == "B"


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="records file not found"):
        read_records(tmp_path / "nope.jsonl")


def test_record_to_json_has_no_whitespace_noise() -> None:
    text = record_to_json(PatientRecord.model_validate(minimal_record()))
    assert "\n" not in text and ", " not in text.split('"text"')[0]
