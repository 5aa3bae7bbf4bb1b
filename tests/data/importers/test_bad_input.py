"""Bad FHIR and MIMIC input through ``clinical-llm data import``: exit 2 with one error naming
file, line (or bundle entry) and field, or with ``--skip-invalid`` a rejection whose counts
reconcile; never a traceback, never an empty records file that looks like a result.
Issue #25 §1 (data layer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from llm.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
P1 = FIXTURES / "fhir" / "bundles" / "p1.json"
MIMIC = FIXTURES / "mimic"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def one_error(text: str) -> str:
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, text
    return errors[0].removeprefix("error: ")


def fhir(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "import", "fhir", str(folder), "--out", str(out), *extra]


def bundle_with(tmp_path: Path, edit: Any = None, data: bytes | None = None) -> Path:
    folder = tmp_path / "bundles"
    folder.mkdir(exist_ok=True)
    if data is None:
        bundle = json.loads(P1.read_text())
        if edit is not None:
            edit(bundle)
        data = json.dumps(bundle).encode()
    (folder / "b.json").write_bytes(data)
    shutil.copytree(P1.parent / "media", folder / "media", dirs_exist_ok=True)
    return folder


def _first_lab(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in bundle["entry"] if e["resource"].get("id") == "lab-wbc")["resource"]


# --- FHIR: dangling references (regression: already right) -----------------------------


def test_an_observation_naming_a_missing_patient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = bundle_with(
        tmp_path, lambda b: _first_lab(b).update(subject={"reference": "Patient/x"})
    )
    code, text = run(fhir(folder, tmp_path / "r.jsonl"), capsys)
    assert code == 2
    assert one_error(text) == (
        f"{folder / 'b.json'}: entry[7] (Observation/lab-wbc): subject.reference: refers to "
        "'Patient/x', which is no Patient in this bundle"
    )
    code, text = run(fhir(folder, tmp_path / "r.jsonl", "--skip-invalid"), capsys)
    assert code == 0
    assert f"{folder}: read 2 = used 1 + rejected 1" in text  # the entry alone, the patient kept


def test_an_observation_naming_a_missing_encounter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = {"reference": "Encounter/gone"}
    folder = bundle_with(tmp_path, lambda b: _first_lab(b).update(encounter=ref))
    code, text = run(fhir(folder, tmp_path / "r.jsonl"), capsys)
    assert code == 2
    assert one_error(text).endswith(
        "entry[7] (Observation/lab-wbc): encounter.reference: refers to 'Encounter/gone', "
        "which is no Encounter in this bundle"
    )
    code, text = run(fhir(folder, tmp_path / "r.jsonl", "--skip-invalid"), capsys)
    assert code == 0
    assert f"{folder}: read 1 = used 0 + rejected 1" in text  # the patient is rejected


# --- FHIR: files that are not a readable Bundle -----------------------------------------

BAD_BUNDLES = {
    "truncated": (P1.read_bytes()[:2000], "not valid JSON at line "),
    "empty": (b"", "empty file (no Bundle)"),
    "utf-16": (P1.read_text().encode("utf-16"), "UTF-16 text (byte-order mark FF FE)"),
    "latin-1": (
        P1.read_text().replace("Example", "Zoë").encode("latin-1"),
        "not UTF-8: byte 0xeb at line ",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_an_unreadable_bundle_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    data, expected = BAD_BUNDLES[case]
    folder = bundle_with(tmp_path, data=data)
    shutil.copy(P1.parent / "p2.json", folder)
    code, text = run(fhir(folder, tmp_path / "r.jsonl"), capsys)
    assert code == 2
    message = one_error(text)
    assert message.startswith(f"{folder / 'b.json'}: <file>: {expected}"), message
    assert "Zoë" not in text
    code, text = run(fhir(folder, tmp_path / "r.jsonl", "--skip-invalid"), capsys)
    assert code == 0
    assert f"{folder}: read 2 = used 1 + rejected 1" in text  # the file is one read unit


def test_a_bundle_with_a_utf8_byte_order_mark_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = bundle_with(tmp_path, data=P1.read_text().encode("utf-8-sig"))
    code, text = run(fhir(folder, tmp_path / "r.jsonl"), capsys)
    assert code == 0, text


def test_an_ndjson_line_not_in_utf8_is_rejected_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bulk"
    shutil.copytree(FIXTURES / "fhir" / "ndjson", folder)
    patients = folder / "Patient.ndjson"
    lines = patients.read_bytes().splitlines()
    patients.write_bytes(b"\n".join([*lines, '{"resourceType": "Zoë"}'.encode("latin-1")]) + b"\n")
    code, text = run(fhir(folder, tmp_path / "r.jsonl"), capsys)
    assert code == 2
    assert one_error(text).startswith(
        f"{patients}:{len(lines) + 1} (<no resourceType>): <line>: not UTF-8: byte 0xeb at column"
    )
    code, text = run(fhir(folder, tmp_path / "r.jsonl", "--skip-invalid"), capsys)
    assert code == 0
    assert "rejected 1" in text and "Traceback" not in text


def test_a_bundle_folder_with_no_patients_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    (folder / "Observation.ndjson").write_text("\n")
    out = tmp_path / "r.jsonl"
    code, text = run(fhir(folder, out), capsys)
    assert code == 2
    assert one_error(text) == f"{folder}: no patients found; nothing to import"
    assert not out.exists()


# --- MIMIC ------------------------------------------------------------------------------


def mimic(tmp_path: Path, notes: bytes, patients: bytes | None = None, *extra: str) -> list[str]:
    folder = tmp_path / "mimic"
    folder.mkdir(exist_ok=True)
    (folder / "notes.csv").write_bytes(notes)
    (folder / "patients.csv").write_bytes(patients or (MIMIC / "patients.csv").read_bytes())
    return [
        "data", "import", "mimic", str(folder / "notes.csv"),
        "--patients", str(folder / "patients.csv"), "--out", str(tmp_path / "r.jsonl"), *extra,
    ]  # fmt: skip


NOTES = (MIMIC / "notes.csv").read_bytes()


def test_missing_columns_are_all_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = NOTES.replace(b"note_type,", b"", 1).replace(b",charttime", b"", 1)
    code, text = run(mimic(tmp_path, notes), capsys)
    assert code == 2
    assert one_error(text).startswith(
        f"{tmp_path / 'mimic' / 'notes.csv'}:1: missing required column(s): note_type, charttime "
    )


def test_a_latin1_note_rejects_its_subject_naming_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first_text = NOTES.index(b'"', NOTES.index(b"\n")) + 1  # the first note's text starts here
    notes = NOTES[:first_text] + "Zoë ".encode("latin-1") + NOTES[first_text:]
    code, text = run(mimic(tmp_path, notes), capsys)
    assert code == 2
    assert one_error(text) == (
        f"{tmp_path / 'mimic' / 'notes.csv'}:2: text: not UTF-8: byte 0xeb at character 3; "
        "the file must be UTF-8: re-encode it (e.g. `iconv -f LATIN1 -t UTF-8`)"
    )
    assert "Zo" not in text
    code, text = run(mimic(tmp_path, notes, None, "--skip-invalid"), capsys)
    assert code == 0
    assert "read 3 = used 2 + rejected 1" in text


def test_a_utf16_csv_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(mimic(tmp_path, NOTES.decode().encode("utf-16")), capsys)
    assert code == 2
    assert one_error(text).startswith(
        f"{tmp_path / 'mimic' / 'notes.csv'}: UTF-16 text (byte-order mark FF FE)"
    )


def test_a_csv_with_a_utf8_byte_order_mark_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run(mimic(tmp_path, NOTES.decode().encode("utf-8-sig")), capsys)
    assert code == 0, text  # Excel writes the mark; it used to hide the first column's name
    assert "read 3 = used 3 + rejected 0" in text


@pytest.mark.parametrize(
    ("notes", "expected"),
    [(b"", "empty file (no header row)"), (NOTES.split(b"\n")[0] + b"\n", None)],
)
def test_empty_notes_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], notes: bytes, expected: str | None
) -> None:
    code, text = run(mimic(tmp_path, notes), capsys)
    assert code == 2
    path = tmp_path / "mimic" / "notes.csv"
    assert one_error(text) == f"{path}: {expected or 'no patients found; nothing to import'}"
    assert not (tmp_path / "r.jsonl").exists()
