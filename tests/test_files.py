"""Reading JSON files and JSONL lines: every failure names the file, line and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.errors import BadInputError, RecordError
from llm.files import json_type, parse_json_line, read_json_object


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
    assert [json_type(v) for v in ({}, [], None, 1, True)] == [
        "object",
        "array",
        "null",
        "int",
        "bool",
    ]
