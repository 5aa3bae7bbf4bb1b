"""Reading JSON, JSONL and text of any encoding, and writing outputs atomically: every
failure names the file, line and problem."""

from __future__ import annotations

import codecs
import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from llm.errors import BadInputError, RecordError
from llm.files import (
    NotUtf8Error,
    atomic_path,
    atomic_write,
    check_writable_dir,
    decode_utf8,
    iter_byte_lines,
    json_type,
    parse_json_line,
    read_json_object,
)


def test_an_object_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama"}', encoding="utf-8")
    assert read_json_object(path, what="model config") == {"model_type": "llama"}


def test_a_missing_file_is_named_with_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    with pytest.raises(BadInputError) as info:
        read_json_object(path, what="run manifest", hint="train first")
    assert str(info.value) == f"{path}: run manifest not found; train first"


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text('{\n  "zero_optimization": {\n}', encoding="utf-8")
    with pytest.raises(BadInputError, match=rf"^{path}:3: not valid JSON: "):
        read_json_object(path, what="DeepSpeed config")


def test_a_folder_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read the model config"):
        read_json_object(tmp_path, what="model config")


def test_another_json_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(BadInputError, match="a report must be a JSON object, got array"):
        read_json_object(path, what="report")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON: Expecting property name enclosed in double quotes at column 2"),
        ("[1]", "expected a JSON object, got array"),
        ("null", "expected a JSON object, got null"),
        ('"x"', "expected a JSON object, got str"),
    ],
)
def test_a_bad_line_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_json_line(text, path="rows.jsonl", line=7)
    assert (info.value.path, info.value.line, info.value.field) == ("rows.jsonl", 7, "<line>")
    assert message in str(info.value)


def test_json_type_names() -> None:
    values: tuple[object, ...] = ({}, [], None, 1, True)
    assert [json_type(v) for v in values] == [
        "object",
        "array",
        "null",
        "int",
        "bool",
    ]


# --- text encodings ---------------------------------------------------------------------


def test_latin1_is_named_by_byte_line_and_column_never_by_text() -> None:
    data = "name: Zoë\nnext".encode("latin-1")
    with pytest.raises(NotUtf8Error) as info:
        decode_utf8(data)
    message = str(info.value)
    assert message.startswith("not UTF-8: byte 0xeb at line 1 column 9; ")
    assert "iconv" in message and "Zo" not in message  # how to fix it, and no text
    assert (info.value.line, info.value.column) == (1, 9)


def test_one_line_is_located_by_column() -> None:
    with pytest.raises(NotUtf8Error, match=r"^not UTF-8: byte 0xe9 at column 3;"):
        decode_utf8(b'{"\xe9"}', start=False)


@pytest.mark.parametrize(
    ("encoding", "name"), [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")]
)
def test_wide_encodings_are_refused_with_their_name(encoding: str, name: str) -> None:
    data = ("\ufeff" if encoding.endswith("be") else "") + '{"a": 1}'
    with pytest.raises(NotUtf8Error, match=rf"^{name} text \(byte-order mark "):
        decode_utf8(data.encode(encoding))


def test_utf16_without_a_mark_is_caught_by_its_nul_bytes() -> None:
    with pytest.raises(NotUtf8Error, match="NUL bytes: UTF-16 text without a byte-order mark"):
        decode_utf8('{"a": 1}\n'.encode("utf-16-le"))


def test_a_utf8_byte_order_mark_is_dropped_only_at_the_start() -> None:
    assert decode_utf8('{"a": 1}'.encode("utf-8-sig")) == '{"a": 1}'
    assert decode_utf8("\ufeffx".encode(), start=False) == "\ufeffx"


def test_byte_lines_drop_the_mark_and_refuse_utf16(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + b"a\r\nb\n\nc")
    with path.open("rb") as fh:
        assert list(iter_byte_lines(fh, path)) == [(1, b"a"), (2, b"b"), (3, b""), (4, b"c")]
    path.write_bytes("a\nb\n".encode("utf-16"))
    with path.open("rb") as fh, pytest.raises(BadInputError, match=rf"^{path}: UTF-16 text"):
        list(iter_byte_lines(fh, path))


# --- atomic writes ----------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_atomic_write_replaces_the_file_when_done(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.jsonl"
    with atomic_write(path) as fh:
        fh.write("one\n")
        assert not path.exists()  # nothing at the target until the write is complete
    assert path.read_text() == "one\n"
    assert _leftovers(path.parent) == []


def test_an_interrupted_write_leaves_the_earlier_file_and_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("earlier\n")
    with pytest.raises(KeyboardInterrupt), atomic_write(path) as fh:
        fh.write("half of the new content")
        raise KeyboardInterrupt
    assert path.read_text() == "earlier\n"
    assert _leftovers(tmp_path) == []


def test_a_full_disk_is_a_clear_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("earlier\n")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(BadInputError) as info, atomic_path(path) as tmp:
        tmp.write_text("new")
        monkeypatch.setattr(os, "replace", full)  # the disk fills up as the file is finished
    assert str(info.value) == (
        f"{path}: cannot write: no space left on the device; an earlier out.jsonl is left as it was"
    )
    monkeypatch.undo()
    assert path.read_text() == "earlier\n"
    assert _leftovers(tmp_path) == []


def test_errors_that_are_not_about_writing_pass_through(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "copy.dcm") as tmp:
        shutil.copyfile(tmp_path / "missing.dcm", tmp)  # the source is missing: not "cannot write"


# --- unwritable folders -----------------------------------------------------------------


def test_a_folder_under_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BadInputError, match=rf"^{blocker}/out: cannot write the build folder: "):
        check_writable_dir(blocker / "out", what="build folder")


def test_a_folder_that_refuses_files_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)
    with pytest.raises(BadInputError) as info:
        check_writable_dir(tmp_path / "new" / "deeper")
    assert str(info.value) == (
        f"{tmp_path}/new/deeper: cannot write the output folder in {tmp_path}: permission denied"
    )
    assert not (tmp_path / "new").exists()  # the check creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(BadInputError, match="permission denied"):
            check_writable_dir(folder)
    finally:
        folder.chmod(0o755)


def test_a_full_disk_is_found_by_writing_and_the_hint_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(BadInputError) as info:
        check_writable_dir(tmp_path / "run", what="training.output_dir", hint="free space there")
    assert str(info.value) == (
        f"{tmp_path}/run: cannot write the training.output_dir in {tmp_path}: "
        "no space left on the device; free space there"
    )
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
