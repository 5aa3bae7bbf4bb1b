"""Chest DICOMs: valid files with the patient's tags, showing what the report's FINDINGS state."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import DigitalXRayImageStorageForPresentation

from llm.data.schema import PatientRecord
from llm.data.synth.cxr import COSTOPHRENIC, ZONES, cardiothoracic_ratio, zone_box
from tests.data.synth.helpers import index_encounter, load, section


def _open(out: Path, record: PatientRecord) -> pydicom.Dataset:
    return pydicom.dcmread(out / index_encounter(record).images[0].path)


def _mean(pixels: np.ndarray, box: tuple[float, float, float, float]) -> float:
    rows, cols = zone_box(box, pixels.shape[0])
    return float(pixels[rows, cols].mean()) / 4095


def test_dicom_tags_match_the_record(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    for r in records:
        ds = _open(cohort_dir, r)
        image = index_encounter(r).images[0]
        assert ds.file_meta.MediaStorageSOPClassUID == DigitalXRayImageStorageForPresentation
        assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "DX" and ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.pixel_array.shape == (128, 128) and ds.pixel_array.dtype == np.uint16
        assert ds.PatientSex == {"female": "F", "male": "M"}[r.demographics.sex]
        assert ds.PatientAge == f"{r.demographics.age:03d}Y"
        assert ds.StudyDate == (image.time or "")[:10].replace("-", "")
        assert ds.ViewPosition == image.view
        # the MRN and name in the DICOM are the ones the radiology report carries
        report = next(n for n in index_encounter(r).notes if n.type == "radiology_report").text
        assert f"MRN {ds.PatientID}" in report
        last, first = str(ds.PatientName).split("^")
        assert f"Patient: {first} {last}" in report


def test_uids_unique_and_deterministic(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    uids = [_open(cohort_dir, r).SOPInstanceUID for r in records]
    assert len(set(uids)) == len(uids)


def test_image_shows_what_findings_state(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    seen = {"consolidation": 0, "effusion": 0, "cardiomegaly": 0, "normal": 0}
    for r in records:
        findings = section(r, "radiology_report", "FINDINGS")
        pixels = _open(cohort_dir, r).pixel_array
        lobe = re.search(r"(right|left) (upper|lower) lobe", findings)
        if lobe:  # the stated zone is much denser than the same zone on the other side
            zone = f"{lobe.group(1)} {lobe.group(2)}"
            other = f"{'left' if lobe.group(1) == 'right' else 'right'} {lobe.group(2)}"
            assert _mean(pixels, ZONES[zone]) > _mean(pixels, ZONES[other]) + 0.3, r.patient_id
            seen["consolidation"] += 1
        effusion = [s for s in findings.split(". ") if "effusion" in s and not s.startswith("No ")]
        if effusion:
            sides = (
                ["right", "left"]
                if "Bilateral" in effusion[0]
                else [w for w in ("right", "left") if w in effusion[0]]
            )
            for side in sides:  # fluid density fills the costophrenic angle
                assert _mean(pixels, COSTOPHRENIC[side]) > 0.55, r.patient_id
            seen["effusion"] += 1
        if "enlarged" in findings or "Cardiomegaly" in findings:
            assert cardiothoracic_ratio(pixels) > 0.55, r.patient_id
            seen["cardiomegaly"] += 1
        if ("Heart size is normal" in findings or "Normal cardiac" in findings) and not lobe:
            assert cardiothoracic_ratio(pixels) < 0.5, r.patient_id
        heart_normal = "enlarged" not in findings and "Cardiomegaly" not in findings
        if (
            "The lungs are clear" in findings and not effusion and heart_normal
        ):  # zones dark and alike
            means = [_mean(pixels, box) for box in ZONES.values()]
            assert max(means) < 0.35 and max(means) - min(means) < 0.08, r.patient_id
            assert (
                _mean(pixels, COSTOPHRENIC["right"]) < 0.35
                and _mean(pixels, COSTOPHRENIC["left"]) < 0.35
            )
            seen["normal"] += 1
    assert all(seen.values()), seen  # the cohort exercised every check
