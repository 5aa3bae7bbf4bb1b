"""Outputs of the data commands are written whole or not at all (issue #25 §3): an
interrupted write (an error mid-way, a full disk) leaves the earlier output as it was and
no partial file; an output folder that cannot be written is named before any work."""

from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import llm.data.build
from llm.cli import main
from llm.data.io import write_records
from llm.data.schema import PatientRecord
from tests.data.tasks.records import record_dict, write_assets

FHIR = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) with its content hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err + captured.out


def cohort(base: Path, n: int = 4) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        row = record_dict(f"P{i:06d}", diagnosis="pneumonia" if i % 2 else "sepsis")
        write_assets(base, row)
        rows.append(row)
    path = base / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_records_written_from_a_failing_iterator_leave_the_earlier_file(tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    first = PatientRecord.model_validate(record_dict("P1", with_assets=False))
    write_records(out, [first])
    before = snapshot(tmp_path)

    def records() -> Iterator[PatientRecord]:
        yield first
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        write_records(out, records())
    assert snapshot(tmp_path) == before  # same file, same bytes, no partial beside it


def test_a_full_disk_while_writing_records_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    record = PatientRecord.model_validate(record_dict("P1", with_assets=False))
    write_records(out, [record])
    before = snapshot(tmp_path)
    real_open = Path.open

    def full_disk_open(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        fh = real_open(self, *args, **kwargs)
        if self.name.endswith(".partial"):

            def write(_: str) -> int:
                raise OSError(errno.ENOSPC, "No space left on device")

            fh.write = write
        return fh

    monkeypatch.setattr(Path, "open", full_disk_open)
    with pytest.raises(llm.errors.BadInputError) as info:
        write_records(out, [record, record])
    monkeypatch.undo()
    assert str(info.value).startswith(f"{out}: cannot write: no space left on the device")
    assert snapshot(tmp_path) == before


def test_a_failed_import_leaves_the_earlier_records_and_no_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    out = out_dir / "records.jsonl"
    rejects = out_dir / "rejects.jsonl"
    args = ["data", "import", "fhir", str(FHIR / "bundles"), "--out", str(out)]
    assert run([*args, "--skip-invalid", "--rejects", str(rejects)], capsys)[0] == 0
    before = snapshot(out_dir)
    broken = ["data", "import", "fhir", str(FHIR / "broken"), "--out", str(out)]
    assert run(broken, capsys)[0] == 2  # the first bad patient stops it
    assert snapshot(out_dir) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "Patient.ndjson").write_text("\n")
    assert run(["data", "import", "fhir", str(empty), "--out", str(out)], capsys)[0] == 2
    assert snapshot(out_dir) == before  # "no patients found": nothing written


def test_a_rebuild_that_fails_keeps_the_earlier_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = cohort(tmp_path / "in")
    out = tmp_path / "built"
    args = ["data", "build", "--records", str(records), "--tasks", "diagnosis,summary"]
    assert run([*args, "--out", str(out)], capsys)[0] == 0
    before = snapshot(out)
    real_save = llm.data.build.save_task
    saved: list[str] = []

    def save_then_fill_the_disk(folder: Path, task, outcome) -> None:  # type: ignore[no-untyped-def]
        if saved:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(folder, task, outcome)
        saved.append(task.name)

    monkeypatch.setattr(llm.data.build, "save_task", save_then_fill_the_disk)
    code, text = run([*args, "--out", str(out)], capsys)
    assert code == 2
    assert f"{out}: cannot write: no space left on the device" in text
    assert saved == ["diagnosis"]  # it failed half-way, after one task was written
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built", "in"]  # no staging left


def test_a_failed_deid_keeps_the_earlier_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = cohort(tmp_path / "in")
    out = tmp_path / "deid" / "records.jsonl"
    args = ["data", "deid", str(records), str(out), "--ner", "rules"]
    assert run(args, capsys)[0] == 0
    before = snapshot(out.parent)
    last = json.loads(records.read_text().splitlines()[-1])
    dicom = records.parent / last["encounters"][-1]["images"][0]["path"]
    dicom.write_bytes(b"truncated")  # the last patient's image: deid fails near the end
    assert run(args, capsys)[0] == 2
    after = snapshot(out.parent)
    assert after["records.jsonl"] == before["records.jsonl"]
    assert not [name for name in after if name.endswith(".partial")]


@pytest.mark.parametrize("command", ["build", "import", "deid"])
def test_an_unwritable_output_folder_is_named_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    records = tmp_path / "records.jsonl"
    records.write_text("not even json\n")  # reading it would fail: the output check comes first
    args = {
        "build": ["data", "build", "--records", str(records), "--tasks", "diagnosis", "--out",
                  str(blocker / "built")],
        "import": ["data", "import", "fhir", str(FHIR / "bundles"), "--out",
                   str(blocker / "r.jsonl")],
        "deid": ["data", "deid", str(records), str(blocker / "r.jsonl"), "--ner", "rules"],
    }[command]  # fmt: skip
    code, text = run(args, capsys)
    assert code == 2
    assert "cannot write the " in text and f"{blocker} is not a folder" in text
