"""evaluate_detections math on a tiny hand-made case, and spans-file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.data.deid.evaluate import GoldNote, NoteDetections, evaluate_detections, read_phi_spans
from llm.errors import RecordError


def test_scores_on_a_hand_made_case() -> None:
    gold = {
        ("P1", "N1"): GoldNote(1, [(0, 10, "NAME"), (20, 30, "DATE"), (40, 44, "MRN")]),
        ("P1", "N2"): GoldNote(2, [(5, 9, "PHONE")]),
    }
    predicted = [
        # NAME half covered, DATE found as NAME (type wrong), MRN missed, one false positive
        NoteDetections("P1", "N1", 60, [(5, 10, "NAME"), (20, 30, "NAME"), (50, 55, "DATE")]),
        NoteDetections("P1", "N2", 20, [(5, 9, "PHONE")]),
        NoteDetections("P1", "N3", 20, [(0, 4, "NAME")]),  # a note without PHI: a false positive
    ]
    ev = evaluate_detections(gold, predicted)
    o = ev.overall
    assert (o.gold, o.gold_found, o.gold_found_typed) == (4, 3, 2)
    assert o.recall == 0.75 and o.typed_recall == 0.5
    assert (o.predicted, o.predicted_correct) == (5, 3) and o.precision == 0.6
    assert (o.gold_chars, o.gold_chars_covered) == (28, 19)
    assert o.char_recall == pytest.approx(19 / 28)
    assert o.char_precision == pytest.approx(19 / 28)  # 28 predicted chars, 19 inside gold
    assert ev.by_entity["NAME"].precision == pytest.approx(2 / 3)
    assert ev.by_entity["DATE"].recall == 1.0 and ev.by_entity["DATE"].typed_recall == 0.0
    assert ev.by_entity["MRN"].recall == 0.0
    assert ev.by_entity["EMAIL"].recall is None
    assert ev.notes == 3
    assert "text" not in json.dumps(ev.to_dict())


def test_gold_of_missing_patients_is_skipped_but_missing_notes_are_errors() -> None:
    gold = {("P9", "N1"): GoldNote(1, [(0, 3, "NAME")])}
    assert evaluate_detections(gold, [NoteDetections("P1", "N1", 5, [])]).gold_notes_skipped == 1
    with pytest.raises(RecordError, match="has no note"):
        evaluate_detections(gold, [NoteDetections("P9", "N2", 5, [])], spans_path="s.jsonl")
    with pytest.raises(RecordError, match="past the end"):
        evaluate_detections(gold, [NoteDetections("P9", "N1", 2, [])], spans_path="s.jsonl")


def test_bad_spans_file_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "phi_spans.jsonl"
    good = {
        "patient_id": "P1",
        "note_id": "N1",
        "spans": [{"start": 0, "end": 3, "entity_type": "NAME"}],
    }
    bad = {
        "patient_id": "P1",
        "note_id": "N2",
        "spans": [{"start": 0, "end": 3, "entity_type": "CITY"}],
    }
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(RecordError) as err:
        read_phi_spans(path)
    assert (err.value.line, err.value.field) == (2, "spans[0].entity_type")
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(RecordError, match="listed twice"):
        read_phi_spans(path)
