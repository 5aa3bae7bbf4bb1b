"""evaluate_detections math on a tiny hand-made case, and spans-file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.data.deid.evaluate import (
    GoldNote,
    NoteDetections,
    evaluate_detections,
    read_phi_spans,
    wilson_interval,
)
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


# ---------------------------------------------------------------- names by origin, terms kept
def test_wilson_interval_matches_known_values() -> None:
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(8, 10) or (0.0, 0.0)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


def test_name_recall_by_origin_and_clinical_terms_kept() -> None:
    # four names (A: 3 of which 2 found, B: 1 found), two clinical terms (one touched)
    spans = [(0, 5, "NAME"), (10, 15, "NAME"), (20, 25, "NAME"), (30, 35, "NAME"), (40, 45, "SSN")]
    origins = {0: ("NG", "A"), 1: ("NG", "A"), 2: ("GH", "A"), 3: ("JP", "B")}
    keep = [(50, 59, "drug"), (60, 70, "eponym")]
    gold = {("P1", "N1"): GoldNote(1, spans, origins, keep)}
    pred = [(0, 5, "NAME"), (12, 14, "NAME"), (30, 35, "NAME"), (40, 45, "SSN"), (62, 66, "NAME")]
    ev = evaluate_detections(gold, [NoteDetections("P1", "N1", 80, pred)], min_group=1)
    regions, countries, terms = ev.names_by_region, ev.names_by_country, ev.clinical_terms
    assert regions is not None and countries is not None and terms is not None
    assert (regions.overall.gold, regions.overall.found) == (4, 3)
    assert regions.by_group["A"].recall == pytest.approx(2 / 3)
    assert regions.by_group["A"].interval == wilson_interval(2, 3)
    assert regions.by_group["B"].recall == 1.0
    assert regions.worst == "A"
    assert regions.difference() == pytest.approx(1 / 3) and regions.ratio() == pytest.approx(2 / 3)
    assert (countries.by_group["NG"].recall, countries.by_group["GH"].recall) == (1.0, 0.0)
    assert countries.worst == "GH"
    assert (terms.overall.gold, terms.overall.found, terms.kept) == (2, 1, 0.5)
    assert terms.by_kind["drug"].recall == 1.0 and terms.by_kind["eponym"].recall == 0.0
    # a kept-term detection is a false positive: 4 of 5 detections overlap PHI
    assert ev.overall.precision == pytest.approx(4 / 5)
    report = ev.to_dict()
    assert report["names_by_region"]["worst"] == "A"  # type: ignore[index]
    assert report["clinical_terms"]["kept"] == 0.5  # type: ignore[index]


def test_small_groups_are_reported_but_not_ranked() -> None:
    gold = {("P1", "N1"): GoldNote(1, [(0, 5, "NAME")], {0: ("NG", "A")})}
    ev = evaluate_detections(gold, [NoteDetections("P1", "N1", 10, [])])  # default min_group
    assert ev.names_by_region is not None
    assert ev.names_by_region.by_group["A"].recall == 0.0
    assert ev.names_by_region.worst is None and ev.names_by_region.difference() is None


def test_files_without_origins_or_terms_report_neither(tmp_path: Path) -> None:
    gold = {("P1", "N1"): GoldNote(1, [(0, 3, "NAME")])}
    ev = evaluate_detections(gold, [NoteDetections("P1", "N1", 5, [(0, 3, "NAME")])])
    assert ev.names_by_region is None and ev.clinical_terms is None
    assert "names_by_region" not in ev.to_dict() and "clinical_terms" not in ev.to_dict()


def test_spans_file_origins_and_terms_are_read(tmp_path: Path) -> None:
    path = tmp_path / "phi_spans.jsonl"
    line = {
        "patient_id": "P1",
        "note_id": "N1",
        "spans": [
            {"start": 0, "end": 3, "entity_type": "DATE"},
            {
                "start": 4,
                "end": 8,
                "entity_type": "NAME",
                "origin": {"country": "NG", "region": "A"},
            },
        ],
        "keep": [{"start": 9, "end": 12, "kind": "unit"}],
    }
    path.write_text(json.dumps(line) + "\n")
    entry = read_phi_spans(path)[("P1", "N1")]
    assert entry.origins == {1: ("NG", "A")} and entry.keep == [(9, 12, "unit")]
