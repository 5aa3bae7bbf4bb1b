"""Bad records files and assets through the real commands (``data validate|build|deid``):
each gives exit 2 and one error naming file, line and field (or the asset file), never a
traceback; where lines are rejected rather than fatal, read = used + rejected.

Issue #25 §1 (data layer). The note text of a record never appears in an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm.cli import main
from llm.data.io import ReadStats, iter_records
from llm.errors import BadInputError, RecordError
from tests.data.tasks.records import record_dict, write_assets

NOTE_WORD = "Zoë"  # placed in a note: it must never be echoed by an error


def cohort(base: Path, n: int = 3) -> tuple[Path, list[dict[str, Any]]]:
    """``n`` valid records with their DICOM and ECG files; returns the records path, rows."""
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        row = record_dict(f"P{i:06d}")
        row["encounters"][-1]["notes"][0]["text"] += f" Seen by {NOTE_WORD}."
        write_assets(base, row)
        rows.append(row)
    path = base / "records.jsonl"
    write_rows(path, rows)
    return path, rows


def write_rows(path: Path, rows: list[dict[str, Any]], encoding: str = "utf-8") -> bytes:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(encoding)
    path.write_bytes(data)
    return data


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def build(records: Path, out: Path, *extra: str, tasks: str = "diagnosis") -> list[str]:
    return ["data", "build", "--records", str(records), "--tasks", tasks, "--out", str(out), *extra]


def deid(records: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "deid", str(records), str(out), "--ner", "rules", *extra]


def one_error(text: str) -> str:
    """The single ``error:`` line a failed command prints (and no traceback)."""
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, text
    assert NOTE_WORD not in text
    return errors[0].removeprefix("error: ")


# --- truncated JSONL --------------------------------------------------------------------


def test_a_truncated_last_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records, _ = cohort(tmp_path / "in")
    data = records.read_bytes()
    records.write_bytes(data[: len(data) - 50])  # the last object cut in the middle
    for args in (["data", "validate", str(records)], build(records, tmp_path / "out")):
        code, text = run(args, capsys)
        assert code == 2
        assert one_error(text).startswith(f"{records}:3: <line>: not valid JSON: ")
    code, text = run(build(records, tmp_path / "out", "--skip-invalid"), capsys)
    assert code == 0
    assert f"{records}: read 3 = used 2 + rejected 1" in text
    rejected = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert (rejected["line"], rejected["field"]) == (3, "<line>")


# --- encodings --------------------------------------------------------------------------


def test_a_latin1_line_is_rejected_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records, rows = cohort(tmp_path / "in")
    good = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    good[1] = json.dumps(rows[1], ensure_ascii=False).encode("latin-1")
    records.write_bytes(b"\n".join(good) + b"\n")
    code, text = run(build(records, tmp_path / "out"), capsys)
    assert code == 2
    assert one_error(text).startswith(f"{records}:2: <line>: not UTF-8: byte 0xeb at column ")
    code, text = run(build(records, tmp_path / "out", "--skip-invalid"), capsys)
    assert code == 0, text
    assert f"{records}: read 3 = used 2 + rejected 1" in text


@pytest.mark.parametrize(("encoding", "name"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_a_utf16_file_is_refused_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str, name: str
) -> None:
    records, rows = cohort(tmp_path / "in")
    write_rows(records, rows, encoding)
    for args in (
        build(records, tmp_path / "out", "--skip-invalid"),  # not a line's problem: fatal
        deid(records, tmp_path / "deid" / "r.jsonl"),
    ):
        code, text = run(args, capsys)
        assert code == 2
        assert one_error(text).startswith(f"{records}: {name} text (byte-order mark ")


def test_a_utf8_byte_order_mark_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records, rows = cohort(tmp_path / "in")
    write_rows(records, rows, "utf-8-sig")
    code, text = run(build(records, tmp_path / "out"), capsys)
    assert code == 0, text
    assert f"{records}: read 3 = used 3 + rejected 0" in text


# --- empty files ------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\n \n"])
def test_an_empty_records_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_bytes(content)
    for args in (
        ["data", "validate", str(records)],
        build(records, tmp_path / "out"),
        deid(records, tmp_path / "deid" / "r.jsonl"),
    ):
        code, text = run(args, capsys)
        assert code == 2
        assert one_error(text) == (
            f"{records}: holds no records (the file is empty or only blank lines)"
        )
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "deid" / "r.jsonl").exists()


# --- assets -----------------------------------------------------------------------------


def _first_asset(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(a for enc in rows[0]["encounters"] for a in enc.get(kind, []))


def test_a_dcm_file_that_is_not_dicom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records, rows = cohort(tmp_path / "in")
    image = records.parent / _first_asset(rows, "images")["path"]
    image.write_bytes(b"this is a text file named .dcm")
    code, text = run(build(records, tmp_path / "out", tasks="radiology_impression"), capsys)
    assert code == 2
    assert one_error(text).startswith(f"{image}: cannot read DICOM pixels: ")
    code, text = run(deid(records, tmp_path / "deid" / "r.jsonl"), capsys)
    assert code == 2
    assert one_error(text) == f"{image}: not a readable DICOM file (InvalidDicomError)"
    assert not (tmp_path / "deid" / "r.jsonl").exists()


def test_a_png_that_is_not_an_image_stops_deid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records, rows = cohort(tmp_path / "in")
    image = _first_asset(rows, "images")
    png = records.parent / "images" / "P000000" / "fake.png"
    png.write_bytes(b"not a png")
    image.update(path="images/P000000/fake.png", format="png")
    write_rows(records, rows)
    code, text = run(deid(records, tmp_path / "deid" / "r.jsonl"), capsys)
    assert code == 2
    assert one_error(text) == f"{png}: not a readable image (UnidentifiedImageError)"


BAD_ECGS = {
    "shape": (np.zeros((3, 100), np.float32), r"expected shape \(12, n_samples\) .*got \(3, 100\)"),
    "empty": (np.zeros((12, 0), np.float32), r"expected shape \(12, n_samples\) .*got \(12, 0\)"),
    "dtype": (
        np.array([["a"] * 10] * 12),
        r"expected real numbers \(int or float\), got dtype <U1",
    ),
    "complex": (np.zeros((12, 10), np.complex64), r"got dtype complex64"),
    "not npy": (None, r"not a NumPy \.npy file"),
}


@pytest.mark.parametrize("case", sorted(BAD_ECGS))
def test_a_bad_ecg_array_stops_build_and_deid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    records, rows = cohort(tmp_path / "in")
    wave = records.parent / _first_asset(rows, "waveforms")["path"]
    array, expected = BAD_ECGS[case]
    if array is None:
        wave.write_bytes(b"lead I: 0.1 0.2 0.3")
    else:
        np.save(wave, array, allow_pickle=False)
    code, text = run(build(records, tmp_path / "out", tasks="ecg_rhythm"), capsys)
    assert code == 2
    message = one_error(text)
    assert message.startswith(f"{wave}: ")
    assert __import__("re").search(expected, message), message
    # de-identification used to copy it through unread, and count it as done
    code, text = run(deid(records, tmp_path / "deid" / "r.jsonl"), capsys)
    assert code == 2
    assert one_error(text) == message


def test_build_skip_invalid_counts_a_bad_asset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records, rows = cohort(tmp_path / "in")
    np.save(records.parent / _first_asset(rows, "waveforms")["path"], np.zeros((3, 5)))
    code, text = run(build(records, tmp_path / "out", "--skip-invalid", tasks="ecg_rhythm"), capsys)
    assert code == 0, text
    assert "ecg_rhythm: 2 examples" in text and "unreadable_waveform 1" in text


# --- generated damage -------------------------------------------------------------------

_VALID = [json.dumps(record_dict(f"P{i:06d}", with_assets=False)).encode() for i in range(3)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(min_value=0, max_value=sum(len(v) + 1 for v in _VALID)),
    junk=st.binary(max_size=8),
    at=st.integers(min_value=0, max_value=2000),
)
def test_damaged_files_are_rejected_by_line_and_reconcile(
    tmp_path: Path, cut: int, junk: bytes, at: int
) -> None:
    """Any truncation of a records file, with any bytes spliced in, gives either a located
    error or records whose counts reconcile; nothing else escapes."""
    data = b"\n".join(_VALID) + b"\n"
    data = data[:cut]
    data = data[: at % (len(data) + 1)] + junk + data[at % (len(data) + 1) :]
    path = tmp_path / "damaged.jsonl"
    path.write_bytes(data)
    stats = ReadStats(str(path))
    try:
        used = list(iter_records(path, stats=stats, skip_invalid=True, check_assets=False))
    except BadInputError as exc:
        assert not isinstance(exc, RecordError)  # a line's problem is rejected, not raised
        assert str(exc).startswith(f"{path}: ")
        return
    assert stats.read == stats.used + stats.rejected == len(used) + len(stats.errors)
    for err in stats.errors:
        assert err.path == str(path) and 1 <= err.line <= data.count(b"\n") + 1
