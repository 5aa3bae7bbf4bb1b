"""MIMIC-IV-Note importer: joins, index admission and readmission label, located errors."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from llm.data.importers.mimic import import_mimic
from llm.data.importers.mimic_tables import format_icd, normalise_race
from llm.data.io import read_records
from llm.data.schema import PatientRecord
from llm.errors import BadInputError, RecordError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mimic"
NOTES = FIXTURES / "notes.csv"
PATIENTS = FIXTURES / "patients.csv"
ADMISSIONS = FIXTURES / "admissions.csv"
DIAGNOSES = FIXTURES / "diagnoses_icd.csv"
BROKEN = FIXTURES / "broken" / "notes.csv"


def _import(
    tmp_path: Path, notes: Path = NOTES, *, full: bool = True, **kwargs: Any
) -> tuple[dict[str, PatientRecord], Any]:
    out = tmp_path / "out" / "records.jsonl"
    report = import_mimic(
        notes,
        PATIENTS,
        out,
        admissions_path=ADMISSIONS if full else None,
        diagnoses_path=DIAGNOSES if full else None,
        **kwargs,
    )
    records, stats = read_records(out)
    assert stats.used == report.stats.used
    return {r.patient_id: r for r in records}, report


def test_demographics_from_patients_and_admissions(tmp_path: Path) -> None:
    records, report = _import(tmp_path)
    assert report.stats.summary().endswith("read 3 = used 3 + rejected 0")
    assert all(r.source == "mimic" for r in records.values())
    d1 = records["10000001"].demographics
    # index admission race (the earlier one says UNKNOWN), insurance, ENGLISH → English
    assert (d1.sex, d1.age, d1.race_ethnicity, d1.payer, d1.language) == (
        "female",
        70,
        "Black",
        "Medicare",
        "English",
    )
    d2 = records["10000002"].demographics
    assert (d2.sex, d2.age, d2.race_ethnicity, d2.payer, d2.language) == (
        "male",
        45,
        "Hispanic",
        "Private",
        "unknown",
    )  # language "?" is unknown
    d3 = records["10000003"].demographics
    assert (d3.race_ethnicity, d3.age, d3.age_band) == ("White", 88, "80+")


def test_index_admission_readmission_label_and_later_admissions_left_out(
    tmp_path: Path,
) -> None:
    records, report = _import(tmp_path)
    p1 = records["10000001"]
    # index = first admission with a discharge summary (20000011); 20000012 starts 15 days
    # after its discharge: readmitted, and left out of the record with its note and diagnosis
    assert [e.encounter_id for e in p1.encounters] == ["20000010", "20000011"]
    assert p1.labels.readmission_30d == "yes"
    assert [e.kind for e in p1.encounters] == ["observation", "inpatient"]
    assert p1.encounters[1].end_time == "2150-03-05T12:00:00"
    assert records["10000002"].labels.readmission_30d == "no"
    assert records["10000003"].labels.readmission_30d is None  # died in the index admission
    assert report.skipped == {
        "admissions after the index admission": 1,
        "notes after the index admission": 1,
        "diagnoses of admissions after the index admission": 1,
    }


def test_notes_types_and_placement(tmp_path: Path) -> None:
    records, _ = _import(tmp_path)
    index = records["10000001"].encounters[-1]
    notes = {n.note_id: n for n in index.notes}
    assert notes["10000001-DS-1"].type == "discharge_summary"
    assert (
        '""' not in notes["10000001-DS-1"].text and '"ceftriaxone"' in notes["10000001-DS-1"].text
    )
    assert notes["10000001-DS-1"].time == "2150-03-05T11:00:00"
    # the radiology report has no hadm_id: its charttime falls inside admission 20000011
    assert notes["10000001-RR-1"].type == "radiology_report"
    types = {n.note_id: n.type for n in records["10000003"].all_notes()}
    assert types == {"10000003-DS-1": "discharge_summary", "10000003-AR-1": "other"}
    assert records["10000002"].all_notes()[0].type == "discharge_summary"  # long name


def test_diagnoses_with_dots_systems_and_primary(tmp_path: Path) -> None:
    records, _ = _import(tmp_path)
    prior, index = records["10000001"].encounters
    assert [(d.system, d.code, d.primary) for d in prior.diagnoses] == [("ICD-9", "428.0", True)]
    assert [(d.code, d.primary) for d in index.diagnoses] == [("J18.9", True), ("I10", False)]
    codes = [d.code for d in records["10000002"].encounters[0].diagnoses]
    assert codes == ["E888.9", "V45.81"]


@pytest.mark.parametrize(
    ("code", "version", "expected"),
    [
        ("J189", 10, "J18.9"),
        ("I10", 10, "I10"),
        ("S72001A", 10, "S72.001A"),
        ("4280", 9, "428.0"),
        ("E8889", 9, "E888.9"),
        ("V4581", 9, "V45.81"),
        ("042", 9, "042"),
    ],
)
def test_format_icd(code: str, version: int, expected: str) -> None:
    assert format_icd(code, version) == expected


@pytest.mark.parametrize(
    ("race", "group"),
    [
        ("BLACK/AFRICAN AMERICAN", "Black"),
        ("WHITE - OTHER EUROPEAN", "White"),
        ("HISPANIC/LATINO - PUERTO RICAN", "Hispanic"),
        ("ASIAN - CHINESE", "Asian"),
        ("SOUTH AMERICAN", "Hispanic"),
        ("AMERICAN INDIAN/ALASKA NATIVE", "Other"),
        ("MULTIPLE RACE/ETHNICITY", "Other"),
        ("UNABLE TO OBTAIN", "unknown"),
        ("PATIENT DECLINED TO ANSWER", "unknown"),
        ("", "unknown"),
    ],
)
def test_normalise_race(race: str, group: str) -> None:
    assert normalise_race(race) == group


def test_without_admissions_encounters_come_from_note_hadm_ids(tmp_path: Path) -> None:
    records, report = _import(tmp_path, full=False)
    p1 = records["10000001"]
    # an admission starts at its earliest note naming it; all admissions are kept
    assert [(e.encounter_id, e.time) for e in p1.encounters] == [
        ("20000011", "2150-03-05T11:00:00"),
        ("20000012", "2150-03-25T10:00:00"),
    ]
    # the radiology note names no admission: the nearest start is 20000011's
    assert {n.note_id for n in p1.encounters[0].notes} == {"10000001-DS-1", "10000001-RR-1"}
    assert p1.labels.readmission_30d is None and p1.demographics.payer == "unknown"
    assert report.skipped == {}


def test_gzipped_notes_give_the_same_records(tmp_path: Path) -> None:
    gz = tmp_path / "notes.csv.gz"
    with NOTES.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    import_mimic(NOTES, PATIENTS, tmp_path / "a" / "r.jsonl", admissions_path=ADMISSIONS)
    import_mimic(gz, PATIENTS, tmp_path / "b" / "r.jsonl", admissions_path=ADMISSIONS)
    assert (tmp_path / "a" / "r.jsonl").read_bytes() == (tmp_path / "b" / "r.jsonl").read_bytes()


# --- errors -------------------------------------------------------------------------


def test_bad_row_names_file_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(RecordError) as info:
        import_mimic(BROKEN, PATIENTS, tmp_path / "r.jsonl", admissions_path=ADMISSIONS)
    # line 6: the header and two notes of two lines each come before it
    assert str(info.value) == f"{BROKEN}:6: charttime: not an ISO time"
    assert not (tmp_path / "r.jsonl").exists()


def test_skip_invalid_counts_unknown_subjects_and_rows_without_subject(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    records, report = _import(tmp_path, BROKEN, full=False, skip_invalid=True, rejects_path=rejects)
    assert (report.stats.read, report.stats.used, report.stats.rejected) == (4, 1, 3)
    assert set(records) == {"10000002"}
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    by_patient = {(r["patient_id"], r["field"]): r for r in rows}
    assert by_patient[("10000001", "charttime")]["line"] == 6
    unknown = by_patient[("10000099", "subject_id")]
    assert unknown["error"] == f"subject 10000099 is not in {PATIENTS}"
    assert by_patient[(None, "subject_id")]["line"] == 8


def test_missing_columns_are_named_at_once(tmp_path: Path) -> None:
    notes = tmp_path / "notes.csv"
    notes.write_text("note_id,subject_id,hadm_id,note_type\nn1,1,2,DS\n", encoding="utf-8")
    with pytest.raises(
        BadInputError,
        match=r"notes.csv:1: missing required column\(s\): "
        r"charttime, text",
    ):
        import_mimic(notes, PATIENTS, tmp_path / "r.jsonl")


def test_row_with_wrong_field_count(tmp_path: Path) -> None:
    notes = tmp_path / "notes.csv"
    header = NOTES.read_text(encoding="utf-8").splitlines()[0]
    notes.write_text(f"{header}\nn1,10000002,,DS,1,2160-07-12 10:00:00\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"notes.csv:2: <row>: has 6 fields, the header has 8"):
        import_mimic(notes, PATIENTS, tmp_path / "r.jsonl")


def test_bad_table_rows_reject_their_subject(tmp_path: Path) -> None:
    patients = tmp_path / "patients.csv"
    text = PATIENTS.read_text(encoding="utf-8").replace("10000002,M,45", "10000002,X,45")
    patients.write_text(text, encoding="utf-8")
    with pytest.raises(RecordError, match=r"patients.csv:3: gender: expected F or M, got 'X'"):
        import_mimic(NOTES, patients, tmp_path / "r.jsonl")


def test_note_naming_an_admission_not_in_the_table(tmp_path: Path) -> None:
    notes = tmp_path / "notes.csv"
    text = NOTES.read_text(encoding="utf-8").replace("10000002,20000021,", "10000002,20000029,")
    notes.write_text(text, encoding="utf-8")
    with pytest.raises(
        RecordError,
        match=r"hadm_id: admission 20000029 of subject 10000002 is "
        r"not in the admissions table",
    ):
        import_mimic(notes, PATIENTS, tmp_path / "r.jsonl", admissions_path=ADMISSIONS)


def test_diagnoses_need_admissions(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--diagnoses needs --admissions"):
        import_mimic(NOTES, PATIENTS, tmp_path / "r.jsonl", diagnoses_path=DIAGNOSES)
