"""Hand-written patient records that follow the note conventions, and their asset files.

Shared by the task, asset and build tests (imported as ``tests.data.tasks.records``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from llm.data.schema import PatientRecord

PROGRESS_NOTE = """Cedar Grove General Hospital
Patient: Jane Roe    MRN 00000000
CHIEF COMPLAINT: Shortness of breath and fever.
HISTORY OF PRESENT ILLNESS:
Three days of productive cough, fever and worsening dyspnea.
No chest pain.
PAST MEDICAL HISTORY:
- Hypertension
- Type 2 diabetes
SOCIAL HISTORY: Lives alone. Former smoker.
PHYSICAL EXAM:
Crackles at the right base. Dullness to percussion.
ASSESSMENT AND PLAN:
Lower respiratory infection suspected; start IV antibiotics.

Signed: Dr. John Doe on 2131-04-02 12:00
"""

DISCHARGE_SUMMARY = """Cedar Grove General Hospital
Hospital Discharge Summary
ADMISSION DATE: 2131-04-02
DISCHARGE DATE: 2131-04-06
CHIEF COMPLAINT: Shortness of breath and fever.
HISTORY OF PRESENT ILLNESS:
Three days of productive cough and fever.
BRIEF HOSPITAL COURSE:
Treated with IV ceftriaxone and azithromycin; afebrile by day 2.
Switched to oral antibiotics on day 3.
DISCHARGE DIAGNOSIS: Community-acquired pneumonia.
DISCHARGE CONDITION: Stable.
DISCHARGE DISPOSITION: Home with services.
FOLLOW-UP:
Dr. Jones, primary care, in 1 week.

Dr. Frank Doe, pager 555-0100, 4/6/31 14:58
"""

RADIOLOGY_REPORT = """EXAM: Chest X-ray, PA view.
INDICATION: Fever and cough.
FINDINGS: Right lower lobe consolidation. No pleural effusion.
IMPRESSION:
1. Right lower lobe pneumonia.

Electronically signed by Dr. Ann Doe, 04/02/2131 14:26
"""

ECG_REPORT = """FINDINGS: Rate 112 bpm. PR 150 ms. QRS 90 ms. QTc 440 ms.
INTERPRETATION: Sinus tachycardia.
"""

ECG_LEAD_NAMES = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def record_dict(
    patient_id: str = "P000001",
    *,
    diagnosis: str | None = "pneumonia",
    readmission: str | None = "no",
    rhythm: str | None = "sinus_tachycardia",
    with_assets: bool = True,
) -> dict[str, Any]:
    """A two-encounter record (prior clinic visit, index admission) as a plain dict."""
    pid = patient_id
    index: dict[str, Any] = {
        "encounter_id": "E2",
        "time": "2131-04-02T08:15:00",
        "end_time": "2131-04-06T12:00:00",
        "kind": "inpatient",
        "notes": [
            {"note_id": f"{pid}-E2-N1", "type": "progress_note", "text": PROGRESS_NOTE},
            {"note_id": f"{pid}-E2-N2", "type": "discharge_summary", "text": DISCHARGE_SUMMARY},
            {"note_id": f"{pid}-E2-N3", "type": "radiology_report", "text": RADIOLOGY_REPORT},
            {"note_id": f"{pid}-E2-N4", "type": "ecg_report", "text": ECG_REPORT},
        ],
        "labs": [
            {
                "code": "6690-2",
                "name": "WBC",
                "value": 16.0,
                "unit": "K/uL",
                "ref_low": 4.0,
                "ref_high": 11.0,
                "time": "2131-04-02T09:00:00",
            },
            {
                "code": "2524-7",
                "name": "Lactate",
                "value": 3.1,
                "unit": "mmol/L",
                "ref_high": 2.0,
                "time": "2131-04-02T09:00:00",
            },
            {
                "code": "6690-2",
                "name": "WBC",
                "value": 14.2,
                "unit": "K/uL",
                "ref_low": 4.0,
                "ref_high": 11.0,
                "time": "2131-04-03T06:00:00",
            },
            {
                "code": "2160-0",
                "name": "Creatinine",
                "value": 0.9,
                "unit": "mg/dL",
                "ref_low": 0.6,
                "ref_high": 1.2,
                "time": "2131-04-03T06:00:00",
            },
            {
                "code": "2951-2",
                "name": "Sodium",
                "value": 131.0,
                "unit": "mmol/L",
                "ref_low": 135.0,
                "ref_high": 145.0,
                "time": "2131-04-03T06:00:00",
            },
        ],
        "vitals": [
            {"name": "heart_rate", "value": 112, "unit": "/min", "time": "2131-04-02T08:20:00"},
            {"name": "sbp", "value": 92, "unit": "mmHg", "time": "2131-04-02T08:20:00"},
            {"name": "dbp", "value": 58, "unit": "mmHg", "time": "2131-04-02T08:20:00"},
            {"name": "resp_rate", "value": 24, "unit": "/min", "time": "2131-04-02T08:20:00"},
            {"name": "temp_c", "value": 38.6, "unit": "Cel", "time": "2131-04-02T08:20:00"},
            {"name": "spo2", "value": 91, "unit": "%", "time": "2131-04-02T08:20:00"},
        ],
        "diagnoses": [
            {
                "system": "ICD-10",
                "code": "J18.9",
                "description": "Pneumonia, unspecified organism",
                "primary": True,
            }
        ],
        "images": [],
        "waveforms": [],
    }
    if with_assets:
        index["images"] = [
            {
                "path": f"images/{pid}/{pid}-CXR1.dcm",
                "modality": "DX",
                "format": "dicom",
                "image_id": f"{pid}-CXR1",
                "view": "PA",
            }
        ]
        index["waveforms"] = [
            {
                "path": f"waveforms/{pid}/{pid}-ECG1.npy",
                "kind": "ecg",
                "sampling_hz": 500,
                "leads": ECG_LEAD_NAMES,
                "format": "npy",
                "waveform_id": f"{pid}-ECG1",
            }
        ]
    return {
        "patient_id": pid,
        "demographics": {
            "sex": "female",
            "age": 72,
            "race_ethnicity": "Black",
            "payer": "Medicare",
            "language": "English",
        },
        "encounters": [
            {
                "encounter_id": "E1",
                "time": "2130-11-10T10:00:00",
                "kind": "outpatient",
                "diagnoses": [
                    {"system": "ICD-10", "code": "I10", "description": "Essential hypertension"}
                ],
            },
            index,
        ],
        "labels": {
            "primary_diagnosis": diagnosis,
            "readmission_30d": readmission,
            "rhythm": rhythm,
        },
        "source": "synthetic",
    }


def make_record(patient_id: str = "P000001", **kwargs: Any) -> PatientRecord:
    """:func:`record_dict` validated as a :class:`PatientRecord`."""
    return PatientRecord.model_validate(record_dict(patient_id, **kwargs))


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    window: tuple[float, float] | None = None,
    photometric: str = "MONOCHROME2",
) -> Path:
    """Write a minimal uncompressed grayscale DICOM (DX) with the given pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def chest_pixels(rows: int = 64, cols: int = 48) -> np.ndarray:
    """A deterministic 12-bit gradient image with a bright 'consolidation' blob."""
    y, x = np.mgrid[0:rows, 0:cols]
    img = (x * 40 + y * 20).astype(np.float64)
    img[(y - rows * 0.7) ** 2 + (x - cols * 0.7) ** 2 < 50] = 3500
    return np.clip(img, 0, 4095).astype(np.uint16)


def ecg_signal(rate_bpm: float = 112.0, seconds: float = 10.0, hz: int = 500) -> np.ndarray:
    """A crude but deterministic 12-lead ECG: a QRS-like spike train, float16 millivolts."""
    t = np.arange(int(seconds * hz)) / hz
    phase = (t * rate_bpm / 60.0) % 1.0
    beat = 1.2 * np.exp(-(((phase - 0.3) / 0.015) ** 2)) + 0.2 * np.exp(
        -(((phase - 0.6) / 0.05) ** 2)
    )
    gains = np.linspace(0.5, 1.5, len(ECG_LEAD_NAMES))[:, None]
    return (gains * beat[None, :]).astype(np.float16)


def write_assets(base: Path, record: dict[str, Any]) -> None:
    """Write the DICOM and ECG files a :func:`record_dict` record points at, under ``base``."""
    for enc in record["encounters"]:
        for image in enc.get("images", []):
            write_dicom(base / image["path"], chest_pixels(), window=(1500.0, 3000.0))
        for wave in enc.get("waveforms", []):
            dst = base / wave["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            np.save(dst, ecg_signal(), allow_pickle=False)
