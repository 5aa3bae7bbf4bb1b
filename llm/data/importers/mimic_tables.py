"""MIMIC-IV CSV reading: located rows, the hosp tables, and value normalisation.

Rows are read with the :mod:`csv` module one at a time (``.csv`` or
``.csv.gz``); a row's line number is the physical line it starts on (the
header is line 1; a quoted note text may span many lines). Table readers keep
only the rows of the subjects asked for, so the 5-million-row diagnoses
table costs memory only for the patients being imported.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from llm.data.importers.common import SourceError
from llm.data.schema import UNKNOWN
from llm.errors import BadInputError, RecordError
from llm.files import UTF8_HINT, NotUtf8Error, check_text_start

# Discharge summaries can exceed the csv module's default 128 KiB field limit.
_FIELD_LIMIT = 2**31 - 1


@dataclass
class CsvRow:
    """One data row of a CSV file, with where it came from."""

    path: str
    line: int
    values: dict[str, str]
    problem: SourceError | None = None  # set when the row cannot be read as a whole

    def get(self, column: str) -> str:
        """The stripped value of ``column`` ("" when the column is absent)."""
        return (self.values.get(column) or "").strip()

    def error(self, column: str, message: str) -> SourceError:
        """An error located at this row and ``column``."""
        return SourceError(self.path, self.line, column, message)


# Bytes that are not UTF-8 are read as lone surrogates (``surrogateescape``) so that
# the row holding them, and its column, can be named and rejected alone.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def open_text(path: Path) -> IO[str]:
    """Open a ``.csv`` or ``.csv.gz`` file as text for the csv module.

    A UTF-8 byte-order mark is dropped; bytes that are not UTF-8 become lone
    surrogates, which :func:`iter_csv` reports by row and column.

    Raises:
        BadInputError: the file is UTF-16/32 (or not text: NUL bytes in its first line).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        head = fh.read(4096)
    try:
        check_text_start(head)
    except NotUtf8Error as exc:
        raise BadInputError(f"{path}: {exc}") from None
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="")
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def _not_utf8(row: CsvRow) -> SourceError | None:
    """The first column of ``row`` holding bytes that are not UTF-8 (the byte, not the text)."""
    for column, value in row.values.items():
        bad = _NOT_UTF8.search(value)
        if bad is not None:
            byte = ord(bad.group()) - 0xDC00
            return row.error(
                column, f"not UTF-8: byte 0x{byte:02x} at character {bad.start() + 1}; {UTF8_HINT}"
            )
    return None


def iter_csv(
    path: Path, required: Sequence[str], *, subjects: set[str] | None = None
) -> Iterator[CsvRow]:
    """Yield the rows of a CSV file.

    A row whose field count differs from the header's is still yielded (its
    leading columns may name the subject it belongs to) with ``problem`` set.

    Args:
        path: the file (``.csv`` or ``.csv.gz``).
        required: columns that must be in the header.
        subjects: when given, only rows whose ``subject_id`` is in it are
            yielded (checked before the row is built: the big tables are
            mostly other subjects' rows).

    Raises:
        BadInputError: the file is missing, empty, or lacks required columns
            (all missing columns are named at once).
    """
    if not path.is_file():
        raise BadInputError(f"{path}: file not found")
    csv.field_size_limit(_FIELD_LIMIT)
    with open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = [_NOT_UTF8.sub("\ufffd", h.strip()) for h in next(reader)]
        except StopIteration:
            raise BadInputError(f"{path}: empty file (no header row)") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise BadInputError(
                f"{path}:1: missing required column(s): {', '.join(missing)} "
                f"(header has: {', '.join(header)})"
            )
        subject_at = header.index("subject_id") if subjects is not None else -1
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise BadInputError(f"{path}:{start}: unreadable CSV: {exc}") from None
            if not values:
                continue  # blank line
            if subjects is not None and (
                subject_at >= len(values) or values[subject_at].strip() not in subjects
            ):
                continue
            row = CsvRow(str(path), start, dict(zip(header, values, strict=False)))
            if len(values) != len(header):
                row.problem = row.error(
                    "<row>", f"has {len(values)} fields, the header has {len(header)}"
                )
            else:
                row.problem = _not_utf8(row)
            yield row


def parse_time(row: CsvRow, column: str, *, required: bool) -> str | None:
    """An ISO-8601 time from ``column`` (MIMIC writes ``2180-05-06 22:23:00``).

    Raises:
        SourceError: not a time, or empty when required.
    """
    text = row.get(column)
    if not text:
        if required:
            raise row.error(column, "missing")
        return None
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise row.error(column, "not an ISO time") from None


def parse_int(row: CsvRow, column: str) -> int:
    """An integer from ``column``.

    Raises:
        SourceError: empty or not an integer.
    """
    text = row.get(column)
    try:
        return int(text)
    except ValueError:
        raise row.error(column, f"not an integer: {text!r}") from None


# --- value normalisation -------------------------------------------------

RACE_GROUPS = ("White", "Black", "Hispanic", "Asian", "Other", UNKNOWN)
_RACE_UNKNOWN = {"", "UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER", "DECLINED"}


def normalise_race(value: str) -> str:
    """Map a MIMIC race string to one of :data:`RACE_GROUPS`.

    Hispanic/Latino and South American → Hispanic (ethnicity first, as in the
    FHIR importer); White*, Portuguese → White; Black* → Black; Asian* →
    Asian; unknown, unable to obtain, declined → unknown; everything else
    (American Indian/Alaska Native, Native Hawaiian/Pacific Islander,
    multiple race, other) → Other.
    """
    v = value.strip().upper()
    if v in _RACE_UNKNOWN:
        return UNKNOWN
    if v.startswith("HISPANIC") or v.startswith("SOUTH AMERICAN"):
        return "Hispanic"
    if v.startswith("WHITE") or v == "PORTUGUESE":
        return "White"
    if v.startswith("BLACK"):
        return "Black"
    if v.startswith("ASIAN"):
        return "Asian"
    return "Other"


def normalise_label(value: str) -> str:
    """Payer / language text: ``?`` and empty → unknown, ALL CAPS → Title case."""
    v = value.strip()
    if v in ("", "?"):
        return UNKNOWN
    return v.title() if v.isupper() else v


def format_icd(code: str, version: int) -> str:
    """Put the dot back into a MIMIC ICD code (``J189`` → ``J18.9``, ``4280`` → ``428.0``).

    ICD-10-CM and ICD-9-CM numeric and V codes take the dot after 3
    characters; ICD-9 E codes after 4 (``E8889`` → ``E888.9``).
    """
    c = code.strip().upper().replace(".", "")
    at = 4 if version == 9 and c.startswith("E") else 3
    return c if len(c) <= at else f"{c[:at]}.{c[at:]}"


# --- hosp tables ---------------------------------------------------------


@dataclass
class PatientRow:
    """patients.csv, one subject."""

    row: CsvRow
    sex: str
    anchor_age: int
    anchor_year: int


@dataclass
class AdmissionRow:
    """admissions.csv, one hospital admission."""

    row: CsvRow
    hadm_id: str
    admittime: str
    dischtime: str | None
    died_in_hospital: bool
    kind: str
    race: str
    payer: str
    language: str


@dataclass
class DiagnosisRow:
    """diagnoses_icd.csv, one coded diagnosis."""

    row: CsvRow
    hadm_id: str
    seq_num: int
    system: Literal["ICD-9", "ICD-10"]
    code: str


@dataclass
class Tables:
    """The hosp-table rows of the subjects being imported, and the errors found in them."""

    patients: dict[str, PatientRow] = field(default_factory=dict)
    admissions: dict[str, list[AdmissionRow]] = field(default_factory=dict)
    diagnoses: dict[str, list[DiagnosisRow]] = field(default_factory=dict)
    errors: dict[str, list[RecordError]] = field(default_factory=dict)
    has_admissions: bool = False

    def add_error(self, subject: str, err: RecordError) -> None:
        self.errors.setdefault(subject, []).append(err)


PATIENT_COLUMNS = ("subject_id", "gender", "anchor_age", "anchor_year")
ADMISSION_COLUMNS = ("subject_id", "hadm_id", "admittime", "dischtime")
DIAGNOSIS_COLUMNS = ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")
_SEX = {"F": "female", "M": "male"}


def _rows_of(
    path: Path, required: Sequence[str], subjects: set[str], tables: Tables
) -> Iterator[tuple[str, CsvRow]]:
    """Rows of ``subjects`` only: rows of other subjects are not looked at."""
    for row in iter_csv(path, required, subjects=subjects):
        subject = row.get("subject_id")
        if row.problem is not None:
            tables.add_error(subject, row.problem)
        else:
            yield subject, row


def read_patients(path: Path, subjects: set[str], tables: Tables) -> None:
    """Read patients.csv rows of ``subjects`` into ``tables`` (errors per subject)."""
    for subject, row in _rows_of(path, PATIENT_COLUMNS, subjects, tables):
        try:
            gender = row.get("gender").upper()
            if gender not in _SEX:
                raise row.error("gender", f"expected F or M, got {row.get('gender')!r}")
            if subject in tables.patients:
                first = tables.patients[subject].row.line
                raise row.error("subject_id", f"subject {subject} already on line {first}")
            tables.patients[subject] = PatientRow(
                row, _SEX[gender], parse_int(row, "anchor_age"), parse_int(row, "anchor_year")
            )
        except SourceError as err:
            tables.add_error(subject, err)


def _admission_kind(admission_type: str) -> str:
    return "observation" if "OBSERVATION" in admission_type.upper() else "inpatient"


def read_admissions(path: Path, subjects: set[str], tables: Tables) -> None:
    """Read admissions.csv rows of ``subjects`` into ``tables``."""
    tables.has_admissions = True
    seen: set[str] = set()
    for subject, row in _rows_of(path, ADMISSION_COLUMNS, subjects, tables):
        try:
            hadm = row.get("hadm_id")
            if not hadm:
                raise row.error("hadm_id", "missing")
            if hadm in seen:
                raise row.error("hadm_id", f"admission {hadm} listed twice")
            seen.add(hadm)
            admit = parse_time(row, "admittime", required=True)
            disch = parse_time(row, "dischtime", required=False)
            assert admit is not None
            if disch is not None and disch < admit:
                raise row.error("dischtime", "before admittime")
            died = bool(row.get("deathtime")) or row.get("hospital_expire_flag") == "1"
            tables.admissions.setdefault(subject, []).append(
                AdmissionRow(
                    row,
                    hadm,
                    admit,
                    disch,
                    died,
                    _admission_kind(row.get("admission_type")),
                    normalise_race(row.get("race")),
                    normalise_label(row.get("insurance")),
                    normalise_label(row.get("language")),
                )
            )
        except SourceError as err:
            tables.add_error(subject, err)


def read_diagnoses(path: Path, subjects: set[str], tables: Tables) -> None:
    """Read diagnoses_icd.csv rows of ``subjects`` into ``tables``."""
    for subject, row in _rows_of(path, DIAGNOSIS_COLUMNS, subjects, tables):
        try:
            version = parse_int(row, "icd_version")
            if version not in (9, 10):
                raise row.error("icd_version", f"expected 9 or 10, got {version}")
            code = row.get("icd_code")
            if not code:
                raise row.error("icd_code", "missing")
            tables.diagnoses.setdefault(subject, []).append(
                DiagnosisRow(
                    row,
                    row.get("hadm_id"),
                    parse_int(row, "seq_num"),
                    "ICD-9" if version == 9 else "ICD-10",
                    format_icd(code, version),
                )
            )
        except SourceError as err:
            tables.add_error(subject, err)
