"""`data deid --evaluate` prints recall by name origin and clinical terms kept, when recorded."""

from __future__ import annotations

import pytest

from llm.cli.data.deid import print_evaluation
from llm.data.deid.evaluate import GoldNote, NoteDetections, evaluate_detections


def test_origin_table_worst_group_and_terms_kept_are_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = [(i * 10, i * 10 + 5, "NAME") for i in range(4)]
    origins = {0: ("NG", "Sub-Saharan Africa"), 1: ("NG", "Sub-Saharan Africa"),
               2: ("JP", "East Asia"), 3: ("JP", "East Asia")}  # fmt: skip
    gold = {("P1", "N1"): GoldNote(1, names, origins, [(50, 59, "drug"), (60, 70, "unit")])}
    found = [(0, 5, "NAME"), (20, 25, "NAME"), (30, 35, "NAME"), (61, 63, "NAME")]
    ev = evaluate_detections(gold, [NoteDetections("P1", "N1", 80, found)], min_group=2)
    print_evaluation(ev)
    out = capsys.readouterr().out
    assert "Name recall by region of origin" in out
    assert "Sub-Saharan Africa" in out and "0.5000" in out
    assert "worst region: Sub-Saharan Africa; worst country: NG" in out
    assert "clinical terms kept: 0.5000 (1 of 2; drug 1.0000, unit 0.0000)" in out


def test_plain_spans_files_print_only_the_entity_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gold = {("P1", "N1"): GoldNote(1, [(0, 5, "NAME")])}
    print_evaluation(evaluate_detections(gold, [NoteDetections("P1", "N1", 9, [(0, 5, "NAME")])]))
    out = capsys.readouterr().out
    assert "PHI detection vs. true spans" in out
    assert "region of origin" not in out and "clinical terms" not in out
