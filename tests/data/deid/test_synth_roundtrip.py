"""Synthetic cohort → de-identification → evaluation against the cohort's own PHI spans."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llm.cli import main


@pytest.mark.slow
def test_synth_cohort_recall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINICAL_LLM_DEID_KEY", "roundtrip-key-0123456789")
    monkeypatch.setenv("CLINICAL_LLM_CACHE", str(tmp_path / "cache"))
    cohort = tmp_path / "synth"
    assert main(["data", "synth", "--patients", "12", "--seed", "7", "--out", str(cohort)]) == 0
    out = tmp_path / "deid" / "records.jsonl"
    code = main(["data", "deid", str(cohort / "records.jsonl"), str(out), "--min-recall", "0.95"])
    assert code == 0
    report = json.loads((out.parent / "deid_eval.json").read_text())
    assert report["overall"]["gold"] > 100
    assert report["overall"]["recall"] >= 0.95
    assert report["overall"]["char_recall"] >= 0.95
    assert report["overall"]["precision"] >= 0.9

    # no PHI span's text is left, as a whole word, in its note's output
    def notes_of(path: Path) -> dict[tuple[str, str], str]:
        records = map(json.loads, path.read_text().splitlines())
        return {
            (r["patient_id"], n["note_id"]): n["text"]
            for r in records
            for e in r["encounters"]
            for n in e["notes"]
        }

    before, after = notes_of(cohort / "records.jsonl"), notes_of(out)
    leaked = []
    for line in (cohort / "phi_spans.jsonl").read_text().splitlines():
        entry = json.loads(line)
        key = (entry["patient_id"], entry["note_id"])
        for s in entry["spans"]:
            phi = before[key][s["start"] : s["end"]]
            if len(phi) >= 4 and re.search(
                rf"(?<![A-Za-z]){re.escape(phi)}(?![A-Za-z])", after[key]
            ):
                leaked.append(s["entity_type"])
    assert len(leaked) <= 0.001 * report["overall"]["gold"], leaked
