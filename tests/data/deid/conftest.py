"""Hand-written notes with known PHI, and a tiny records folder (DICOM + ECG) built from them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from llm.data.deid.engine import Deidentifier

KEY = b"test-key-0123456789abcdef"

# (text, [(phi substring, entity type), ...]) per note; substrings are unique within their note.
NOTES_P1: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Patient: Eleanor Whitfield   MRN: 00482913\n"
        "ADMISSION DATE: 2131-03-14\n"
        "CHIEF COMPLAINT: shortness of breath\n"
        "HISTORY OF PRESENT ILLNESS: Mrs. Whitfield is a 92-year-old woman "
        "who presented to St. Mary's Hospital on 03/14/2131 with cough. "
        "WBC 12.1, ICD J18.9, BP 130/80.\n"
        "SOCIAL HISTORY: Lives at 48 Chestnut Street, Dayton, OH 45402 with her daughter Grace "
        "(phone 937-555-0142). Fax records to (937) 555-0199.\n"
        "ASSESSMENT AND PLAN: follow up with Dr. Raymond Okafor in 2 weeks.\n",
        [
            ("Eleanor Whitfield", "NAME"),
            ("00482913", "MRN"),
            ("2131-03-14", "DATE"),
            ("Whitfield is", "NAME"),
            ("92", "AGE"),
            ("St. Mary's Hospital", "HOSPITAL"),
            ("03/14/2131", "DATE"),
            ("48 Chestnut Street, Dayton, OH 45402", "ADDRESS"),
            ("Grace", "NAME"),
            ("937-555-0142", "PHONE"),
            ("(937) 555-0199", "FAX"),
            ("Raymond Okafor", "NAME"),
        ],
    ),
    (
        "ADMISSION DATE: March 14, 2131\n"
        "DISCHARGE DATE: 2131-03-19\n"
        "BRIEF HOSPITAL COURSE: Ms. Whitfield improved on antibiotics. "
        "Her daughter Grace Whitfield "
        "(grace.w@example.net) agreed with discharge on the 19th of March.\n"
        "FOLLOW-UP: Lakeside Medical Center cardiology, call 937-555-0177.\n"
        "Electronically signed by: Priya Raman, MD 2131-03-19 14:05\n",
        [
            ("March 14, 2131", "DATE"),
            ("2131-03-19\n", "DATE"),
            ("Whitfield improved", "NAME"),
            ("Grace Whitfield", "NAME"),
            ("grace.w@example.net", "EMAIL"),
            ("19th of March", "DATE"),
            ("Lakeside Medical Center", "HOSPITAL"),
            ("937-555-0177", "PHONE"),
            ("Priya Raman", "NAME"),
            ("2131-03-19 14:05", "DATE"),
        ],
    ),
]
NOTES_P2: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Name: Tobias Nguyen  SSN: 123-45-6789  Acct #: 7719-2284\n"
        "HISTORY OF PRESENT ILLNESS: 67-year-old man, seen by Dr. Amy Castillo on Jan 2, 2131. "
        "Troponin 0.04 at 10:30. Sodium 138 on 1/2 strength saline. Pain 5/10.\n",
        [
            ("Tobias Nguyen", "NAME"),
            ("123-45-6789", "SSN"),
            ("7719-2284", "MRN"),
            ("Amy Castillo", "NAME"),
            ("Jan 2, 2131", "DATE"),
        ],
    ),
]


def found(deid: Deidentifier, text: str) -> list[tuple[str, str]]:
    """``(span text, entity type)`` of every detection in ``text`` (patient-level analysis)."""
    return [(text[d.start : d.end], d.entity_type) for d in deid.analyze_patient([text])[0]]


def covered(deid: Deidentifier, text: str, phi: str) -> str | None:
    """The type of the detection that covers all of ``phi`` in ``text``, else ``None``."""
    start = text.index(phi)
    end = start + len(phi)
    for d in deid.analyze_patient([text])[0]:
        if d.start <= start and end <= d.end:
            return d.entity_type
    return None


def touched(deid: Deidentifier, text: str, part: str) -> list[str]:
    """Types of the detections that overlap ``part`` of ``text``."""
    start = text.index(part)
    end = start + len(part)
    return [
        d.entity_type for d in deid.analyze_patient([text])[0] if d.start < end and start < d.end
    ]


def first_span(text: str, phi: str) -> tuple[int, int]:
    """Offsets of ``phi`` (trailing context words like ``is`` stripped) in ``text``."""
    start = text.index(phi)
    core = phi.split(" ")[0] if phi.endswith((" is", " improved")) else phi.rstrip("\n")
    return start, start + len(core)


def spans_of(text: str, phis: list[tuple[str, str]]) -> list[dict[str, object]]:
    """The ``phi_spans.jsonl`` spans of a hand-written note."""
    out = []
    for phi, entity in phis:
        start, end = first_span(text, phi)
        out.append({"start": start, "end": end, "entity_type": entity})
    return out


def phi_strings() -> list[str]:
    """Every PHI value of the hand-written notes (for leak checks)."""
    out = []
    for notes in (NOTES_P1, NOTES_P2):
        for text, phis in notes:
            for phi, _ in phis:
                s, e = first_span(text, phi)
                out.append(text[s:e])
    return out


def leaked_phi(text: str) -> list[str]:
    """The PHI values of :func:`phi_strings` that ``text`` holds as whole tokens.

    A value counts where it stands alone, not inside a longer number or word:
    the age "92" leaks in "92-year-old" or "age 92", not in a timing "0.92 s" or
    a count "1920" that a log line happens to print.
    """
    return [
        phi
        for phi in phi_strings()
        if re.search(rf"(?<![0-9A-Za-z.]){re.escape(phi)}(?![0-9A-Za-z])", text)
    ]


def make_dicom(path: Path, *, patient_name: str, patient_id: str) -> np.ndarray:
    """Write a small DX image with PHI in its header; returns its pixel array."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "20390314"
    ds.PatientAge = "092Y"
    ds.PatientAddress = "48 Chestnut Street, Dayton, OH"
    ds.StudyDate = "21310314"
    ds.StudyTime = "101500"
    ds.AcquisitionDateTime = "21310314101500"
    ds.InstitutionName = "St. Mary's Hospital"
    ds.ReferringPhysicianName = "Okafor^Raymond"
    ds.OperatorsName = "Tech^Sam"
    ds.AccessionNumber = "ACC99881"
    ds.private_block(0x0009, "ACME HOSPITAL", create=True).add_new(0x01, "LO", "private PHI")
    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096).astype(np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return pixels


@dataclass
class Cohort:
    """A two-patient records folder with its PHI spans file."""

    records: Path
    spans: Path
    pixels: np.ndarray
    wave: np.ndarray


def _note(pid: str, e: int, n: int, ntype: str, text: str, time: str) -> dict[str, object]:
    return {"note_id": f"{pid}-E{e}-N{n}", "type": ntype, "text": text, "time": time}


def build_cohort(root: Path) -> Cohort:
    """Write ``root/records.jsonl``, ``root/phi_spans.jsonl`` and the assets they point at."""
    root.mkdir(parents=True, exist_ok=True)
    pixels = make_dicom(
        root / "images/P000001/I1.dcm", patient_name="Whitfield^Eleanor", patient_id="00482913"
    )
    wave = (np.sin(np.linspace(0, 60, 12 * 500)).reshape(12, 500)).astype(np.float16)
    (root / "waveforms/P000001").mkdir(parents=True)
    np.save(root / "waveforms/P000001/W1.npy", wave)
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    t0 = "2131-03-14T"
    lab = {"code": "6690-2", "name": "WBC", "value": 12.1, "unit": "K/uL", "time": t0 + "10:00:00"}
    vital = {"name": "heart_rate", "value": 104, "unit": "/min", "time": t0 + "09:30:00"}
    image = {"path": "images/P000001/I1.dcm", "modality": "DX", "format": "dicom"}
    image |= {"image_id": "I1", "time": t0 + "10:15:00"}
    ecg = {"path": "waveforms/P000001/W1.npy", "kind": "ecg", "sampling_hz": 500, "leads": leads}
    ecg |= {"waveform_id": "W1", "time": t0 + "09:45:00"}
    p1 = {
        "patient_id": "P000001",
        "demographics": {"sex": "female", "age": 92, "race_ethnicity": "White"},
        "encounters": [
            {
                "encounter_id": "E1",
                "time": t0 + "09:00:00",
                "end_time": "2131-03-19T15:30:00",
                "kind": "inpatient",
                "notes": [
                    _note("P000001", 1, 1, "progress_note", NOTES_P1[0][0], t0 + "11:00:00"),
                    _note(
                        "P000001", 1, 2, "discharge_summary", NOTES_P1[1][0], "2131-03-19T14:05:00"
                    ),
                ],
                "labs": [lab],
                "vitals": [vital],
                "images": [image],
                "waveforms": [ecg],
            }
        ],
    }
    p2 = {
        "patient_id": "P000002",
        "demographics": {"sex": "male", "age": 67},
        "encounters": [
            {
                "encounter_id": "E1",
                "time": "2131-01-02T08:00:00",
                "notes": [
                    _note("P000002", 1, 1, "progress_note", NOTES_P2[0][0], "2131-01-02T09:00:00")
                ],
            }
        ],
    }
    records = root / "records.jsonl"
    records.write_text("".join(json.dumps(p) + "\n" for p in (p1, p2)), encoding="utf-8")
    spans = root / "phi_spans.jsonl"
    lines = []
    for pid, notes in (("P000001", NOTES_P1), ("P000002", NOTES_P2)):
        for n, (text, phis) in enumerate(notes, start=1):
            lines.append(
                {"patient_id": pid, "note_id": f"{pid}-E1-N{n}", "spans": spans_of(text, phis)}
            )
    spans.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return Cohort(records, spans, pixels, wave)


@pytest.fixture(scope="session")
def spacy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pipeline cache folder for the whole session (building it takes a moment)."""
    return tmp_path_factory.mktemp("spacy-cache")


@pytest.fixture(scope="session")
def tagger(spacy_cache: Path) -> Deidentifier:
    """A tag-strategy de-identifier shared by the recognizer tests."""
    return Deidentifier(strategy="tag", key=KEY, cache_dir=spacy_cache)


@pytest.fixture(scope="session")
def surrogater(spacy_cache: Path) -> Deidentifier:
    """A surrogate-strategy de-identifier with date shifting."""
    return Deidentifier(strategy="surrogate", date_shift=True, key=KEY, cache_dir=spacy_cache)


@pytest.fixture
def cohort(tmp_path: Path) -> Cohort:
    """A fresh two-patient records folder under ``tmp_path/in``."""
    return build_cohort(tmp_path / "in")
