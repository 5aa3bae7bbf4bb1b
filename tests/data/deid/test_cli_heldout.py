"""`data synth-deid-eval` writes the held-out corpus as records, `data deid --ner` picks the
engine, and the two run end to end through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.cli import main
from llm.data.deid.evaluate import read_phi_spans
from llm.data.deid.records import deidentify_records
from llm.data.io import iter_records
from llm.errors import BadInputError
from tests.data.deid.conftest import KEY, Cohort


@pytest.fixture(autouse=True)
def _key_and_cache(monkeypatch: pytest.MonkeyPatch, spacy_cache: Path) -> None:
    monkeypatch.setenv("CLINICAL_LLM_CACHE", str(spacy_cache.parent / "cli-cache"))
    monkeypatch.setenv("CLINICAL_LLM_DEID_KEY", KEY.decode())


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("heldout")
    assert main(["data", "synth-deid-eval", "--notes", "10", "--seed", "2", "--out", str(out)]) == 0
    return out


def test_heldout_records_validate_and_match_the_spans_file(heldout: Path) -> None:
    records = list(iter_records(heldout / "records.jsonl"))
    note_keys = {(r.patient_id, n.note_id) for r in records for n in r.all_notes()}
    assert len(note_keys) == 10
    assert note_keys == set(read_phi_spans(heldout / "phi_spans.jsonl"))
    texts = {json.loads(line)["note_id"]: json.loads(line)["text"]
             for line in (heldout / "notes.jsonl").read_text().splitlines()}  # fmt: skip
    assert all(n.text == texts[n.note_id] for r in records for n in r.all_notes())


def test_heldout_corpus_scores_end_to_end_with_origins_and_terms(
    heldout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "records.jsonl"
    spans = heldout / "phi_spans.jsonl"
    code = main(["data", "deid", str(heldout / "records.jsonl"), str(out), "--evaluate",
                 "--spans", str(spans), "--ner", "rules"])  # fmt: skip
    captured = capsys.readouterr().out
    assert code == 0
    assert "Name recall by region of origin" in captured and "all names" in captured
    assert "clinical terms kept:" in captured
    assert "ner rules" in captured
    report = json.loads((out.parent / "deid_eval.json").read_text())
    assert report["overall"]["gold"] == sum(
        len(json.loads(line)["spans"]) for line in spans.read_text().splitlines()
    )


def test_ner_is_recorded_in_the_summary_and_defaults_to_statistical(
    cohort: Cohort, tmp_path: Path
) -> None:
    rules = deidentify_records(cohort.records, tmp_path / "a" / "r.jsonl", key=KEY, ner="rules")
    default = deidentify_records(cohort.records, tmp_path / "b" / "r.jsonl", key=KEY)
    assert (rules.ner, default.ner) == ("rules", "statistical")


def test_unknown_ner_is_bad_input(cohort: Cohort, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--ner must be one of"):
        deidentify_records(cohort.records, tmp_path / "o" / "r.jsonl", key=KEY, ner="bert")  # type: ignore[arg-type]
    code = main(["data", "deid", str(cohort.records), str(tmp_path / "o" / "r.jsonl"),
                 "--ner", "bert"])  # fmt: skip
    assert code == 2
