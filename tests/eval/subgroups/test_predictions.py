"""Reading predictions files: canonical labels, unknown groups, errors by file/line/field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from eval.subgroups.predictions import UNKNOWN, predictions_from_rows, read_predictions
from llm.data.io import ReadStats
from llm.errors import BadInputError, RecordError


def _row(i: int, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": f"ex{i}",
        "prediction": "yes",
        "reference": "no",
        "demographics": {"sex": "female", "other": {"site": "A"}},
    }
    row.update(overrides)
    return row


def _write(tmp_path: Path, rows: list[object]) -> Path:
    path = tmp_path / "predictions.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_columns_unknown_groups_and_flattened_other(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            _row(1, prediction=1, reference=1.0, score=0.7),
            _row(2, demographics={"sex": None, "age_band": ""}),
            "",
            _row(3, demographics={"sex": "male", "extra_key_ok": 3}, task="diagnosis"),
        ],
    )
    stats = ReadStats(str(path))
    data = read_predictions(path, stats=stats)
    assert (stats.read, stats.used, stats.rejected) == (3, 3, 0)
    assert list(data.predictions) == ["1", "yes", "yes"] and data.references[0] == "1"
    assert list(data.groups("sex")) == ["female", UNKNOWN, "male"]
    assert list(data.groups("site")) == ["A", UNKNOWN, UNKNOWN]
    assert list(data.groups("age_band")) == [UNKNOWN] * 3
    assert data.scores is not None and data.scores[0] == 0.7
    assert list(data.lines) == [1, 2, 4]


def test_unknown_attribute_suggests_a_close_name(tmp_path: Path) -> None:
    data = read_predictions(_write(tmp_path, [_row(1)]))
    with pytest.raises(BadInputError, match="did you mean 'sex'"):
        data.groups("sexx")


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ("{not json", "<line>", "not valid JSON"),
        ("[1, 2]", "<line>", "expected a JSON object, got array"),
        (_row(2, prediction=None), "prediction", "must not be null"),
        ({"id": "x", "prediction": "a", "reference": "b"}, "demographics", "field required"),
        (_row(2, reference={"a": 1}), "reference", "got object"),
        (_row(2, score="high"), "score", "expected a number, got str"),
        (_row(2, id=True), "id", "expected a string or integer"),
        (_row(2, demographics={"sex": ["f"]}), "demographics.sex", "got array"),
        (_row(2, demographics={"other": {"site": "a*b"}}), "demographics.other.site", "'*'"),
        (_row(1), "id", "repeats id 'ex1' of line 1"),
    ],
)
def test_bad_line_names_file_line_and_field(
    tmp_path: Path, bad: object, field: str, message: str
) -> None:
    path = _write(tmp_path, [_row(1), bad, _row(3)])
    stats = ReadStats(str(path))
    with pytest.raises(RecordError) as info:
        read_predictions(path, stats=stats)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 2, field)
    assert message in info.value.message
    assert (stats.read, stats.used, stats.rejected) == (2, 1, 1)


def test_rejects_file_keeps_reading_and_counts_reconcile(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(1), _row(2, score="x", prediction=[]), _row(3)])
    rejects = io.StringIO()
    stats = ReadStats(str(path))
    data = read_predictions(path, stats=stats, rejects=rejects)
    assert len(data) == 2 and (stats.read, stats.used, stats.rejected) == (3, 2, 1)
    written = [json.loads(line) for line in rejects.getvalue().splitlines()]
    assert {(w["line"], w["field"]) for w in written} == {(2, "prediction"), (2, "score")}


def test_score_rules_and_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path, [_row(1, score=0.5), _row(2)])
    with pytest.raises(RecordError, match="needs a score") as info:
        read_predictions(path, require_score="auroc")
    assert (info.value.line, info.value.field) == (2, "score")
    path = _write(tmp_path, [_row(1, score=1.5)])
    with pytest.raises(RecordError, match=r"outside \[0, 1\]"):
        read_predictions(path, unit_score="expected_calibration_error")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="no valid predictions"):
        read_predictions(empty)
    with pytest.raises(BadInputError, match="not found"):
        read_predictions(tmp_path / "missing.jsonl")


def test_rows_in_memory_are_checked_as_the_lines_of_their_file(tmp_path: Path) -> None:
    rows = [_row(0, score=0.5), _row(1, reference=1.0, prediction="1"), _row(2, id="ex0")]
    path = _write(tmp_path, [*rows])
    from_file, from_rows = io.StringIO(), io.StringIO()
    stats_file, stats_rows = ReadStats(str(path)), ReadStats(str(path))
    read = read_predictions(path, stats=stats_file, rejects=from_file)
    held = predictions_from_rows(rows, path, stats=stats_rows, rejects=from_rows)
    assert from_rows.getvalue() == from_file.getvalue()  # line 3 repeats an id, same record
    assert (stats_rows.read, stats_rows.used, stats_rows.rejected) == (3, 2, 1)
    assert (stats_file.read, stats_file.used, stats_file.rejected) == (3, 2, 1)
    assert held.ids == read.ids and held.path == read.path
    assert held.references.tolist() == read.references.tolist() == ["no", "1"]
    assert held.demographics == read.demographics
    with pytest.raises(RecordError) as info:
        predictions_from_rows([_row(0), {"id": "x"}], path)
    assert (info.value.line, info.value.field) == (2, "prediction")
