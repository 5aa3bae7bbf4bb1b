"""Reading facts back out of a written cohort, the way a consumer would: from the files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from llm.data.io import read_records
from llm.data.schema import Encounter, Note, PatientRecord
from llm.data.sections import split_sections
from llm.data.synth.diagnosis_rule import read_findings
from llm.data.synth.presentation import symptom_chances
from llm.data.synth.profiles import PROFILES


def load(out: Path) -> tuple[list[PatientRecord], dict[str, dict[str, Any]]]:
    """Records (validated, assets checked) and PHI spans by note id."""
    records, stats = read_records(out / "records.jsonl")
    assert stats.rejected == 0
    spans = {}
    for line in (out / "phi_spans.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        spans[row["note_id"]] = row
    return records, spans


def index_encounter(record: PatientRecord) -> Encounter:
    return record.encounters[-1]


def note_of(record: PatientRecord, kind: str) -> Note:
    (note,) = [n for n in index_encounter(record).notes if n.type == kind]
    return note


def section(record: PatientRecord, kind: str, name: str) -> str:
    return split_sections(note_of(record, kind).text)[name]


def admission_vitals(record: PatientRecord) -> dict[str, float]:
    """The first measurement of each vital sign in the index encounter."""
    enc = index_encounter(record)
    first: dict[str, float] = {}
    for v in sorted(enc.vitals, key=lambda v: v.time or ""):
        first.setdefault(v.name, v.value)
    return first


def reported_rate(record: PatientRecord) -> int:
    match = re.search(r"(\d+) bpm", section(record, "ecg_report", "FINDINGS"))
    assert match, "ECG FINDINGS state no rate"
    return int(match.group(1))


def detect_r_peaks(lead: np.ndarray, hz: float) -> np.ndarray:
    """R peaks of one lead: remove baseline, threshold, one peak per 250 ms refractory window."""
    x = lead.astype(np.float64)
    k = int(0.2 * hz)
    y = x - np.convolve(x, np.ones(k) / k, mode="same")
    threshold = 0.5 * np.percentile(y, 99.5)
    peaks: list[int] = []
    for i in np.nonzero(y > threshold)[0]:
        if peaks and i - peaks[-1] < 0.25 * hz:
            continue
        window = y[i : i + int(0.06 * hz)]
        peaks.append(int(i + np.argmax(window)))
    return np.array(peaks)


def documents_own_symptom(record: PatientRecord) -> bool:
    """Whether the H&P's HPI states (not negated) a symptom of the record's diagnosis."""
    present, _ = read_findings(section(record, "progress_note", "HISTORY OF PRESENT ILLNESS"))
    return bool(present & set(symptom_chances(PROFILES[record.labels.primary_diagnosis or ""])))
