"""FHIR importer: mapping of the fixture bundles, located errors, skip-invalid counts."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest

from llm.data.importers.fhir import import_fhir
from llm.data.io import read_records
from llm.data.schema import PatientRecord
from llm.errors import BadInputError, RecordError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
BUNDLES = FIXTURES / "bundles"
BROKEN = FIXTURES / "broken" / "p3-bad-value.json"


def _import(src: Path, tmp_path: Path, **kwargs: Any) -> tuple[dict[str, PatientRecord], Any]:
    out = tmp_path / "out" / "records.jsonl"
    report = import_fhir(src, out, **kwargs)
    records, stats = read_records(out)  # checks that asset files exist
    assert stats.used == report.stats.used
    return {r.patient_id: r for r in records}, report


def _bundle(tmp_path: Path, entries: list[dict[str, Any]], name: str = "b.json") -> Path:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(entries)],
    }
    (folder / name).write_text(json.dumps(bundle), encoding="utf-8")
    return folder


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "t1",
    "gender": "male",
    "birthDate": "1960-01-01",
}
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "class": {"code": "IMP"},
    "subject": {"reference": "Patient/t1"},
    "period": {"start": "2020-05-01T10:00:00Z", "end": "2020-05-03T10:00:00Z"},
}


def _obs(**extra: Any) -> dict[str, Any]:
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2951-2", "display": "Na"}]},
        "subject": {"reference": "Patient/t1"},
        "effectiveDateTime": "2020-05-02T10:00:00Z",
        "valueQuantity": {"value": 140, "unit": "mmol/L"},
    }
    obs.update(extra)
    return obs


# --- mapping of the fixture bundles --------------------------------------------------


def test_demographics_from_patient_extensions_and_coverage(tmp_path: Path) -> None:
    records, report = _import(BUNDLES, tmp_path)
    assert report.stats.summary().endswith("read 2 = used 2 + rejected 0")
    p1, p2 = records["fhir-p1"], records["fhir-p2"]
    assert p1.source == "fhir"
    d1 = p1.demographics
    # born 1950-06-15, latest encounter 2021-03-01: 70
    assert (d1.sex, d1.age, d1.age_band) == ("female", 70, "65-79")
    assert (d1.race_ethnicity, d1.payer, d1.language) == (
        "Black or African American",
        "Medicare",
        "English",
    )
    d2 = p2.demographics
    # ethnicity Hispanic wins over race White; born on Feb 29 1980, seen 2022-07-04: 42
    assert (d2.sex, d2.age, d2.race_ethnicity, d2.language, d2.payer) == (
        "male",
        42,
        "Hispanic",
        "Spanish",
        "unknown",
    )


def test_encounters_labs_vitals_and_placement_by_time(tmp_path: Path) -> None:
    records, _ = _import(BUNDLES, tmp_path)
    visit, admission = records["fhir-p1"].encounters
    assert (visit.encounter_id, visit.kind) == ("enc-1", "outpatient")
    assert (admission.encounter_id, admission.kind) == ("enc-2", "inpatient")
    assert admission.end_time == "2021-03-05T12:00:00+00:00"
    # cond-3 names no encounter: its onset falls on the clinic visit
    assert [d.code for d in visit.diagnoses] == ["E11.9"]
    labs = {lab.code: lab for lab in admission.labs}
    assert (labs["6690-2"].value, labs["6690-2"].unit) == (14.2, "10*3/uL")
    assert (labs["6690-2"].ref_low, labs["6690-2"].ref_high) == (4.0, 11.0)
    assert labs["2160-0"].value == 1.4  # no encounter reference: placed in the admission by time
    vitals = {v.name: v for v in admission.vitals}
    assert vitals["heart_rate"].value == 104
    assert (vitals["sbp"].value, vitals["dbp"].value) == (150, 90)  # BP panel components
    assert (vitals["temp_c"].value, vitals["temp_c"].unit) == (38.5, "Cel")  # from 101.3 [degF]
    assert vitals["spo2"].value == 91


def test_diagnoses_prefer_icd10_and_take_primary_from_encounter(tmp_path: Path) -> None:
    records, _ = _import(BUNDLES, tmp_path)
    dx = records["fhir-p1"].encounters[1].diagnoses
    assert [(d.system, d.code, d.primary) for d in dx] == [
        ("ICD-10", "J18.9", True),  # rank 1; the SNOMED coding beside it is not used
        ("SNOMED", "38341003", False),  # linked only through Encounter.diagnosis
    ]
    af = records["fhir-p2"].encounters[0].diagnoses[0]
    assert (af.code, af.primary) == ("I48.91", True)  # no ranks: use DD marks the primary


def test_notes_from_document_references_and_reports(tmp_path: Path) -> None:
    records, _ = _import(BUNDLES, tmp_path)
    notes = {n.note_id: n for n in records["fhir-p1"].encounters[1].notes}
    assert notes["doc-ds"].type == "discharge_summary"
    assert "DISCHARGE DIAGNOSIS: community-acquired pneumonia" in notes["doc-ds"].text
    assert notes["dr-cxr"].type == "radiology_report"
    assert notes["dr-cxr"].text.startswith("EXAM: Chest X-ray PA")
    p2_notes = {n.note_id: n.type for n in records["fhir-p2"].all_notes()}
    assert p2_notes == {"doc-pn": "progress_note", "dr-ecg": "ecg_report"}


def test_images_written_beside_the_records(tmp_path: Path) -> None:
    records, report = _import(BUNDLES, tmp_path)
    out_dir = tmp_path / "out"
    cxr = records["fhir-p1"].encounters[1].images[0]  # Media has no encounter: the report's
    assert (cxr.path, cxr.format, cxr.modality, cxr.view) == (
        "records_assets/fhir-p1/cxr-1.dcm",
        "dicom",
        "DX",
        "PA",
    )
    ds = pydicom.dcmread(out_dir / cxr.path)
    assert ds.Modality == "DX" and ds.pixel_array.shape == (4, 4)
    images = {im.image_id: im for im in records["fhir-p2"].encounters[0].images}
    copied = out_dir / images["cxr-2"].path
    assert copied.read_bytes() == (BUNDLES / "media" / "p2-cxr.png").read_bytes()
    assert images["cxr-2"].modality == "CR"
    assert images["thumb-2"].modality == "OT"  # no modality anywhere: DICOM "other"
    assert report.assets_written == 3


def test_unmapped_resources_are_counted_not_dropped_silently(tmp_path: Path) -> None:
    _, report = _import(BUNDLES, tmp_path)
    assert report.skipped == {"Procedure": 1, "Observation[social-history]": 1}


def test_import_is_deterministic(tmp_path: Path) -> None:
    import_fhir(BUNDLES, tmp_path / "a" / "records.jsonl")
    import_fhir(BUNDLES, tmp_path / "b" / "records.jsonl")
    first = (tmp_path / "a" / "records.jsonl").read_bytes()
    assert first == (tmp_path / "b" / "records.jsonl").read_bytes()


def test_ndjson_pool(tmp_path: Path) -> None:
    records, report = _import(FIXTURES / "ndjson", tmp_path)
    assert report.stats.used == 2
    lab = records["nd-1"].encounters[0].labs[0]
    assert (lab.code, lab.value, lab.ref_low) == ("2951-2", 131.0, 135.0)
    assert records["nd-2"].encounters[0].vitals[0].name == "temp_c"


def test_items_of_a_patient_without_encounters_go_to_an_unassigned_encounter(
    tmp_path: Path,
) -> None:
    records, _ = _import(_bundle(tmp_path, [PATIENT, _obs()]), tmp_path)
    (enc,) = records["t1"].encounters
    assert (enc.encounter_id, enc.kind, enc.time) == (
        "t1-unassigned",
        "unassigned",
        "2020-05-02T10:00:00+00:00",
    )
    assert records["t1"].demographics.age == 60


def test_timeless_items_never_become_the_index_encounter(tmp_path: Path) -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/t1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
    }
    records, _ = _import(_bundle(tmp_path, [PATIENT, ENCOUNTER, condition]), tmp_path)
    # no time, no encounter: a synthetic encounter at the first encounter's start, placed
    # before it so that the last encounter (the index) stays the real one
    assert [e.encounter_id for e in records["t1"].encounters] == ["t1-unassigned", "e1"]
    assert records["t1"].encounters[0].diagnoses[0].system == "SNOMED"


# --- errors -------------------------------------------------------------------------


def test_bad_entry_names_file_entry_resource_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(BROKEN, folder)
    with pytest.raises(RecordError) as info:
        import_fhir(folder, tmp_path / "records.jsonl")
    err = info.value
    assert str(err).startswith(
        f"{folder / BROKEN.name}: entry[3] (Observation/obs-7): valueQuantity.value: "
    )
    assert (err.line, err.field) == (4, "valueQuantity.value")  # line = 1-based entry number
    assert not (tmp_path / "records.jsonl").exists()  # no half-written output


def test_skip_invalid_rejects_the_patient_and_counts(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(BUNDLES, folder)
    shutil.copy(BROKEN, folder)
    rejects = tmp_path / "rejects.jsonl"
    records, report = _import(folder, tmp_path, skip_invalid=True, rejects_path=rejects)
    assert (report.stats.read, report.stats.used, report.stats.rejected) == (3, 2, 1)
    assert set(records) == {"fhir-p1", "fhir-p2"}
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["patient_id"], r["resource"], r["line"], r["field"]) for r in rows] == [
        ("fhir-p3", "Observation/obs-7", 4, "valueQuantity.value")
    ]


def test_unreadable_file_is_one_rejected_unit(tmp_path: Path) -> None:
    folder = _bundle(tmp_path, [PATIENT])
    (folder / "zz.json").write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    with pytest.raises(RecordError, match=r"zz.json: <file>: not valid JSON at line 1"):
        import_fhir(folder, tmp_path / "r.jsonl")
    _, report = _import(folder, tmp_path, skip_invalid=True)
    assert (report.stats.read, report.stats.used, report.stats.rejected) == (2, 1, 1)


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        (
            [PATIENT, ENCOUNTER, _obs(encounter={"reference": "Encounter/nope"})],
            r"entry\[2\] \(Observation/o1\): encounter.reference: refers to 'Encounter/nope'",
        ),
        (
            [PATIENT, _obs(subject={"reference": "Patient/ghost"})],
            r"entry\[1\] \(Observation/o1\): subject.reference: refers to 'Patient/ghost'",
        ),
        (
            [PATIENT, {**PATIENT, "id": "t2"}, {k: v for k, v in _obs().items() if k != "subject"}],
            r"entry\[2\] \(Observation/o1\): subject: missing, and the bundle holds 2 patients",
        ),
        (
            [PATIENT, {**ENCOUNTER, "period": {"end": "2020-05-03T10:00:00Z"}}],
            r"entry\[1\] \(Encounter/e1\): period.start: missing",
        ),
        (
            [PATIENT, _obs(effectiveDateTime="2020-05-02T10:00:00")],
            r"entry\[1\] \(Observation/o1\): effectiveDateTime: ",
        ),  # FHIR needs a timezone
        (
            [{**PATIENT, "birthDate": "2030-01-01"}, ENCOUNTER],
            r"entry\[0\] \(Patient/t1\): birthDate: after the patient's latest encounter",
        ),
        (
            [PATIENT, {"resourceType": "Medi", "id": "x"}],
            r"entry\[1\] \(Medi/x\): resourceType: unknown FHIR R4 resource type",
        ),
    ],
)
def test_located_errors(tmp_path: Path, entries: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(RecordError, match=match):
        import_fhir(_bundle(tmp_path, entries), tmp_path / "records.jsonl")


def test_ndjson_errors_name_the_text_line(tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text(json.dumps(PATIENT) + "\n", encoding="utf-8")
    bad = _obs(valueQuantity={"value": "high"})
    lines = [json.dumps(_obs(id="o0")), json.dumps(bad)]
    (folder / "Observation.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(
        RecordError,
        match=r"Observation.ndjson:2 \(Observation/o1\): "
        r"valueQuantity.value: ",
    ):
        import_fhir(folder, tmp_path / "records.jsonl")


def _media(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Media",
        "id": "m1",
        "status": "completed",
        "subject": {"reference": "Patient/t1"},
        "content": content,
    }


def test_media_that_is_not_what_it_claims_is_an_error(tmp_path: Path) -> None:
    fake = base64.b64encode(b"not a dicom file at all").decode()
    entries = [PATIENT, ENCOUNTER, _media({"contentType": "application/dicom", "data": fake})]
    with pytest.raises(RecordError, match=r"\(Media/m1\): content.data: not a readable DICOM"):
        import_fhir(_bundle(tmp_path, entries), tmp_path / "records.jsonl")


def test_remote_media_urls_are_not_fetched(tmp_path: Path) -> None:
    entries = [
        PATIENT,
        ENCOUNTER,
        _media({"contentType": "image/png", "url": "https://example.org/x.png"}),
    ]
    with pytest.raises(RecordError, match=r"content.url: remote URLs are not fetched"):
        import_fhir(_bundle(tmp_path, entries), tmp_path / "records.jsonl")


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not found"):
        import_fhir(tmp_path / "nope", tmp_path / "r.jsonl")
    with pytest.raises(BadInputError, match=r"no \*\.json Bundles"):
        import_fhir(tmp_path, tmp_path / "r.jsonl")
