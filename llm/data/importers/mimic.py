"""Import MIMIC-IV-Note CSVs (with the MIMIC-IV hosp tables) into patient records.

One record per ``subject_id`` of the notes file. The notes file is streamed
row by row with the :mod:`csv` module and grouped by subject in memory (the
grouped note texts of every subject are held until the records are written:
about the size of the notes file; split a very large file by subject to use
less). The hosp tables are then read keeping only the rows of those subjects.

Rules (tables in ``docs/importers.md``):

* Encounters are the subject's admissions (``--admissions``); without that
  table, one encounter per ``hadm_id`` of the notes, starting at its earliest
  note. Notes without ``hadm_id`` go to the admission their time falls in, else
  the nearest one (:class:`~llm.data.importers.common.RecordAssembler`).
* Index admission: the first admission (by admittime) that has a discharge
  summary, else the last admission. ``readmission_30d`` is "yes" when another
  admission starts after the index discharge and at most 30 days later, "no"
  otherwise, unset when the patient died during the index admission.
  Admissions after the index (and their notes and diagnoses) are left out of
  the record, so that the index is the record's last encounter (the contract
  every task renderer relies on) and the readmission is not visible in the
  input; they are counted in :attr:`ImportReport.skipped`.
* A note whose subject is not in the patients table rejects that subject.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from llm.data.importers.common import (
    ImportedPatient,
    ImportReport,
    Outcome,
    Progress,
    RecordAssembler,
    RejectedUnit,
    SourceError,
    check_import_outputs,
    time_key,
    write_import,
)
from llm.data.importers.mimic_tables import (
    AdmissionRow,
    CsvRow,
    Tables,
    iter_csv,
    parse_time,
    read_admissions,
    read_diagnoses,
    read_patients,
)
from llm.data.io import ReadStats, format_loc
from llm.data.schema import UNKNOWN, Demographics, Diagnosis, Encounter, Labels, Note, PatientRecord
from llm.errors import BadInputError, RecordError

NOTE_COLUMNS = ("note_id", "subject_id", "hadm_id", "note_type", "charttime", "text")
READMISSION_WINDOW = timedelta(days=30)

#: MIMIC note_type (short code or long name, case-insensitive) to Note.type; others → "other".
NOTE_TYPES = {
    "DS": "discharge_summary",
    "DISCHARGE SUMMARY": "discharge_summary",
    "DISCHARGE": "discharge_summary",
    "RR": "radiology_report",
    "RADIOLOGY": "radiology_report",
    "RADIOLOGY REPORT": "radiology_report",
}

SKIP_LATER_ADMISSIONS = "admissions after the index admission"
SKIP_LATER_NOTES = "notes after the index admission"
SKIP_LATER_DIAGNOSES = "diagnoses of admissions after the index admission"


@dataclass
class NoteRow:
    """A valid note row: the note and the admission it names."""

    row: CsvRow
    note: Note
    hadm_id: str | None


@dataclass
class SubjectNotes:
    """The notes of one subject, in file order, and the errors of its rows."""

    first_line: int
    notes: list[NoteRow] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


def _note_row(row: CsvRow, seen_ids: set[str]) -> NoteRow:
    note_id = row.get("note_id")
    if not note_id:
        raise row.error("note_id", "missing")
    if note_id in seen_ids:
        raise row.error("note_id", f"note {note_id} listed twice")
    kind = row.get("note_type")
    if not kind:
        raise row.error("note_type", "missing")
    text = row.values.get("text") or ""
    if not text.strip():
        raise row.error("text", "empty note")
    time = parse_time(row, "charttime", required=True)
    note = Note(note_id=note_id, type=NOTE_TYPES.get(kind.upper(), "other"), text=text, time=time)
    # keep only the location: the row's values would hold a second reference per column
    return NoteRow(CsvRow(row.path, row.line, {}), note, row.get("hadm_id") or None)


def read_notes(
    path: Path, progress: Progress[Any] | None = None
) -> tuple[dict[str, SubjectNotes], list[RecordError]]:
    """Stream the notes file and group its rows by subject.

    Returns:
        Notes per subject (in order of first appearance) and the errors of rows
        that name no subject (each is rejected on its own).

    Raises:
        BadInputError: the file is missing or lacks required columns.
    """
    subjects: dict[str, SubjectNotes] = {}
    orphans: list[RecordError] = []
    seen_ids: set[str] = set()
    rows = iter_csv(path, NOTE_COLUMNS)
    for row in progress(rows, description="notes") if progress else rows:
        subject = row.get("subject_id")
        if not subject:
            orphans.append(row.problem or row.error("subject_id", "missing"))
            continue
        group = subjects.setdefault(subject, SubjectNotes(row.line))
        if row.problem is not None:
            group.errors.append(row.problem)
            continue
        try:
            note_row = _note_row(row, seen_ids)
        except SourceError as err:
            group.errors.append(err)
            continue
        seen_ids.add(note_row.note.note_id)
        group.notes.append(note_row)
    return subjects, orphans


def _readmission(
    index: AdmissionRow, admissions: list[AdmissionRow]
) -> Literal["yes", "no"] | None:
    if index.died_in_hospital or index.dischtime is None:
        return None
    discharged = datetime.fromisoformat(index.dischtime)
    later = [
        datetime.fromisoformat(a.admittime) for a in admissions if a.admittime > index.dischtime
    ]
    if later and min(later) - discharged <= READMISSION_WINDOW:
        return "yes"
    return "no"


class MimicAssembler:
    """Builds the record of one subject from its notes and hosp-table rows."""

    def __init__(self, tables: Tables, notes_path: Path, patients_path: Path) -> None:
        self.tables = tables
        self.notes_path = notes_path
        self.patients_path = patients_path
        self.skipped: Counter[str] = Counter()

    def outcome(self, subject: str, group: SubjectNotes) -> Outcome:
        """The record of ``subject``, or every error that rejects it."""
        errors = group.errors + self.tables.errors.get(subject, [])
        patient = self.tables.patients.get(subject)
        if patient is None and not self.tables.errors.get(subject):
            errors.append(
                SourceError(
                    str(self.notes_path),
                    group.first_line,
                    "subject_id",
                    f"subject {subject} is not in {self.patients_path}",
                )
            )
        admissions = sorted(
            self.tables.admissions.get(subject, []), key=lambda a: (a.admittime, a.hadm_id)
        )
        known = {a.hadm_id for a in admissions}
        if self.tables.has_admissions:
            errors += [
                n.row.error(
                    "hadm_id",
                    f"admission {n.hadm_id} of subject {subject} is not in the admissions table",
                )
                for n in group.notes
                if n.hadm_id is not None and n.hadm_id not in known
            ]
            errors += [
                d.row.error(
                    "hadm_id",
                    f"admission {d.hadm_id} of subject {subject} is not in the admissions table",
                )
                for d in self.tables.diagnoses.get(subject, [])
                if d.hadm_id not in known
            ]
        if errors or patient is None:
            return RejectedUnit(subject, sorted(errors, key=lambda e: (e.path, e.line)))
        return self._record(subject, group, admissions)

    def _record(self, subject: str, group: SubjectNotes, admissions: list[AdmissionRow]) -> Outcome:
        assembler = RecordAssembler(subject)
        labels = Labels()
        index: AdmissionRow | None = None
        kept = admissions
        if admissions:
            ds = {n.hadm_id for n in group.notes if n.note.type == "discharge_summary"}
            index = next((a for a in admissions if a.hadm_id in ds), admissions[-1])
            kept = admissions[: admissions.index(index) + 1]
            labels.readmission_30d = _readmission(index, admissions)
            if len(kept) < len(admissions):
                self.skipped[SKIP_LATER_ADMISSIONS] += len(admissions) - len(kept)
        kept_ids = {a.hadm_id for a in kept}
        cutoff = (index.dischtime or index.admittime) if index is not None else None
        for a in kept:
            assembler.add_encounter(
                Encounter(
                    encounter_id=a.hadm_id, time=a.admittime, end_time=a.dischtime, kind=a.kind
                )
            )
        if not self.tables.has_admissions:
            # without an admissions table, an admission starts at its earliest note
            starts: dict[str, str] = {}
            for n in group.notes:
                if n.hadm_id and n.note.time is not None:
                    t = starts.get(n.hadm_id, n.note.time)
                    starts[n.hadm_id] = min(t, n.note.time, key=time_key)
            for hadm, start in starts.items():
                assembler.add_encounter(Encounter(encounter_id=hadm, time=start))
        for n in group.notes:
            later = (n.hadm_id is not None and n.hadm_id not in kept_ids) if admissions else False
            if cutoff is not None and n.hadm_id is None and str(n.note.time) > cutoff:
                later = True
            if later:
                self.skipped[SKIP_LATER_NOTES] += 1
                continue
            assembler.add(n.note, encounter_id=n.hadm_id, time=n.note.time, error=n.row.error)
        for d in sorted(self.tables.diagnoses.get(subject, []), key=lambda d: d.seq_num):
            if d.hadm_id not in kept_ids:
                self.skipped[SKIP_LATER_DIAGNOSES] += 1
                continue
            diagnosis = Diagnosis(system=d.system, code=d.code, primary=d.seq_num == 1)
            assembler.add(diagnosis, encounter_id=d.hadm_id, time=None, error=d.row.error)
        encounters, errors = assembler.encounters()
        patient = self.tables.patients[subject]
        if errors:
            return RejectedUnit(subject, errors)
        age = patient.anchor_age + int(encounters[-1].time[:4]) - patient.anchor_year
        race = UNKNOWN
        for a in kept:  # the index's race, else the latest one known before it
            race = a.race if a.race != UNKNOWN else race
        demographics: dict[str, Any] = {"sex": patient.sex, "age": age, "race_ethnicity": race}
        if index is not None:
            demographics |= {"payer": index.payer, "language": index.language}
        try:
            record = PatientRecord(
                patient_id=subject,
                demographics=Demographics(**demographics),
                encounters=encounters,
                labels=labels,
                source="mimic",
            )
        except ValidationError as exc:
            return RejectedUnit(
                subject,
                [
                    patient.row.error(f"<record>.{format_loc(tuple(e['loc']))}", e["msg"])
                    for e in exc.errors()
                ],
            )
        return ImportedPatient(record)


def import_mimic(
    notes_path: Path,
    patients_path: Path,
    out_path: Path,
    *,
    admissions_path: Path | None = None,
    diagnoses_path: Path | None = None,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
    progress: Progress[Any] | None = None,
) -> ImportReport:
    """Import MIMIC-IV-Note notes with their patients (and admissions, diagnoses).

    Args:
        notes_path: MIMIC-IV-Note CSV (``discharge.csv``, ``radiology.csv``; ``.csv.gz`` too).
        patients_path: MIMIC-IV ``patients.csv``.
        out_path: records file to write (JSONL).
        admissions_path: MIMIC-IV ``admissions.csv`` (encounters, race, payer,
            language, readmission label).
        diagnoses_path: MIMIC-IV ``diagnoses_icd.csv``; needs ``admissions_path``.
        skip_invalid: reject bad subjects and go on instead of stopping.
        rejects_path: where rejected subjects' errors go (JSONL), when skipping.
        progress: wraps the notes row loop to show progress (``track``-like).

    Returns:
        Counts (subjects read = used + rejected), skipped items, paths.

    Raises:
        BadInputError: a file is missing or lacks required columns; diagnoses
            without admissions.
        RecordError: the first bad row, unless ``skip_invalid``.
    """
    if diagnoses_path is not None and admissions_path is None:
        raise BadInputError("--diagnoses needs --admissions: diagnoses are placed by hadm_id")
    for p in (patients_path, admissions_path, diagnoses_path):
        if p is not None and not p.is_file():
            raise BadInputError(f"{p}: file not found")
    check_import_outputs(out_path, rejects_path)
    groups, orphans = read_notes(notes_path, progress)
    subjects = set(groups)
    tables = Tables()
    read_patients(patients_path, subjects, tables)
    if admissions_path is not None:
        read_admissions(admissions_path, subjects, tables)
    if diagnoses_path is not None:
        read_diagnoses(diagnoses_path, subjects, tables)
    assembler = MimicAssembler(tables, notes_path, patients_path)
    report = ImportReport(ReadStats(str(notes_path)), out_path, rejects_path=rejects_path)

    def outcomes() -> Iterator[Outcome]:
        units: list[tuple[int, str | None, Any]] = [(e.line, None, e) for e in orphans]
        units += [(g.first_line, s, g) for s, g in groups.items()]
        for _, subject, unit in sorted(units, key=lambda u: u[0]):
            if subject is None:
                yield RejectedUnit(None, [unit])
            else:
                yield assembler.outcome(subject, unit)

    write_import(outcomes(), report=report, skip_invalid=skip_invalid)
    report.skipped = assembler.skipped
    return report
