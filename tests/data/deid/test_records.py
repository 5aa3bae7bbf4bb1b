"""Whole records: notes, structured times, ages, DICOM headers and waveforms."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest

from llm.data.deid.engine import Deidentifier
from llm.data.deid.records import deidentify_records
from llm.data.io import read_records
from llm.errors import BadInputError, RecordError
from tests.data.deid.conftest import KEY, Cohort, phi_strings


def _times(record: dict[str, object]) -> list[str]:
    out: list[str] = []
    for enc in record["encounters"]:  # type: ignore[attr-defined]
        out += [enc["time"]] + ([enc["end_time"]] if enc.get("end_time") else [])
        for part in ("notes", "labs", "vitals", "images", "waveforms"):
            out += [x["time"] for x in enc.get(part, []) if x.get("time")]
    return out


def test_records_are_deidentified_with_intervals_kept(cohort: Cohort, tmp_path: Path) -> None:
    out = tmp_path / "out" / "records.jsonl"
    summary = deidentify_records(cohort.records, out, key=KEY, spans_path=cohort.spans)
    assert (summary.stats.read, summary.stats.used, summary.stats.rejected) == (2, 2, 0)
    assert (summary.notes, summary.images, summary.waveforms) == (3, 1, 1)
    records, stats = read_records(out)  # asset paths resolve relative to OUT
    assert stats.used == 2
    text = out.read_text()
    for phi in phi_strings():
        if len(phi) > 3:
            assert phi not in text
    before = [json.loads(line) for line in cohort.records.read_text().splitlines()]
    after = [json.loads(line) for line in text.splitlines()]
    deid = Deidentifier(key=KEY)
    for b, a in zip(before, after, strict=True):
        offset = deid.date_offset_days(b["patient_id"])
        deltas = {
            (datetime.fromisoformat(y) - datetime.fromisoformat(x)).days
            for x, y in zip(_times(b), _times(a), strict=True)
        }
        assert deltas == {offset}
    assert records[0].demographics.age == 90 and records[0].demographics.age_band == "80+"
    assert records[1].demographics.age == 67
    assert summary.evaluation is not None and summary.evaluation.overall.recall == 1.0


def test_dicom_header_scrubbed_and_pixels_unchanged(cohort: Cohort, tmp_path: Path) -> None:
    out = tmp_path / "out" / "records.jsonl"
    deidentify_records(cohort.records, out, key=KEY)
    src = pydicom.dcmread(cohort.records.parent / "images/P000001/I1.dcm")
    ds = pydicom.dcmread(out.parent / "images/P000001/I1.dcm")
    assert str(ds.PatientName) == "P000001" and ds.PatientID == "P000001"
    assert (
        ds.PatientBirthDate == "" and ds.ReferringPhysicianName == "" and ds.AccessionNumber == ""
    )
    for keyword in ("PatientAddress", "InstitutionName", "OperatorsName"):
        assert keyword not in ds
    assert not any(elem.tag.is_private for elem in ds)
    assert ds.PatientAge == "090Y"
    offset = Deidentifier(key=KEY).date_offset_days("P000001")
    shift = datetime.strptime(ds.StudyDate, "%Y%m%d") - datetime.strptime(src.StudyDate, "%Y%m%d")
    assert shift.days == offset
    assert ds.AcquisitionDateTime[:8] == ds.StudyDate and ds.AcquisitionDateTime[8:] == "101500"
    assert ds.StudyInstanceUID != src.StudyInstanceUID and ds.StudyInstanceUID.startswith("2.25.")
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == src.SOPClassUID
    assert ds.PatientIdentityRemoved == "YES"
    assert np.array_equal(ds.pixel_array, cohort.pixels)
    assert src.PatientName == "Whitfield^Eleanor"  # the original is left alone


def test_waveforms_are_linked_or_copied(cohort: Cohort, tmp_path: Path) -> None:
    out = tmp_path / "out" / "records.jsonl"
    deidentify_records(cohort.records, out, key=KEY, date_shift=False, strategy="tag")
    copy = out.parent / "waveforms/P000001/W1.npy"
    assert np.array_equal(np.load(copy, allow_pickle=False), cohort.wave)
    ds = pydicom.dcmread(out.parent / "images/P000001/I1.dcm")
    assert ds.StudyDate == ""  # without a shift, dates go
    assert os.path.samefile(
        copy, cohort.records.parent / "waveforms/P000001/W1.npy"
    )  # same fs: linked


def test_parallel_output_equals_serial(cohort: Cohort, tmp_path: Path) -> None:
    one = deidentify_records(cohort.records, tmp_path / "a" / "r.jsonl", key=KEY)
    two = deidentify_records(cohort.records, tmp_path / "b" / "r.jsonl", key=KEY, workers=2)
    assert (tmp_path / "a/r.jsonl").read_bytes() == (tmp_path / "b/r.jsonl").read_bytes()
    assert one.detections == two.detections


def test_out_beside_in_is_refused(cohort: Cohort) -> None:
    with pytest.raises(BadInputError, match="different folder"):
        deidentify_records(cohort.records, cohort.records.parent / "deid.jsonl", key=KEY)


def test_invalid_lines_stop_or_go_to_rejects(cohort: Cohort, tmp_path: Path) -> None:
    with cohort.records.open("a") as fh:
        fh.write('{"patient_id": "P000003", "encounters": [{"encounter_id": "E1"}]}\n')
    with pytest.raises(RecordError) as err:
        deidentify_records(cohort.records, tmp_path / "o1" / "r.jsonl", key=KEY)
    assert err.value.line == 3 and err.value.field == "encounters[0].time"
    rejects = tmp_path / "o2" / "rejects.jsonl"
    summary = deidentify_records(
        cohort.records,
        tmp_path / "o2" / "r.jsonl",
        key=KEY,
        skip_invalid=True,
        rejects_path=rejects,
    )
    assert (summary.stats.read, summary.stats.used, summary.stats.rejected) == (3, 2, 1)
    assert json.loads(rejects.read_text().splitlines()[0])["line"] == 3
