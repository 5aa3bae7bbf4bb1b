"""The note corpus: reading, the patient-level split, packing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from llm.errors import BadInputError, RecordError
from llm.models.chat_template import BOS_TOKEN, EOS_TOKEN
from llm.models.corpus import (
    chunk_stream,
    document_stream,
    pack_blocks,
    read_note_corpus,
    split_patients,
)
from llm.models.tokenizer import token_id
from tests.conftest import minimal_record
from tests.models.conftest import NOTES, note_record


def test_reads_every_note_and_counts(note_records: Path) -> None:
    corpus = read_note_corpus(note_records)
    assert (corpus.stats.read, corpus.stats.used, corpus.stats.rejected) == (8, 8, 0)
    assert len(corpus.documents) == 8
    assert corpus.n_notes == sum(2 + i % 2 for i in range(8))
    assert corpus.documents["P000000"] == [NOTES[0], NOTES[1]]


def test_patients_without_notes_are_counted_not_hidden(write_jsonl) -> None:  # type: ignore[no-untyped-def]
    empty = note_record(2, [])
    blank = note_record(3, ["   "])
    path = write_jsonl([note_record(1, [NOTES[0]]), empty, blank])
    corpus = read_note_corpus(path)
    assert corpus.stats.used == 3
    assert corpus.patients_without_notes == 2
    assert list(corpus.documents) == ["P000001"]


def test_bad_line_names_file_line_and_field(write_jsonl) -> None:  # type: ignore[no-untyped-def]
    bad = minimal_record("P2")
    bad["encounters"][0]["notes"][0]["text"] = 5
    path = write_jsonl([minimal_record("P1"), bad])
    with pytest.raises(RecordError) as info:
        read_note_corpus(path)
    assert info.value.line == 2
    assert info.value.field == "encounters[0].notes[0].text"


def test_no_note_text_and_duplicates_are_bad_input(write_jsonl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInputError, match="no record has any note text"):
        read_note_corpus(write_jsonl([note_record(1, [])], name="empty.jsonl"))
    with pytest.raises(BadInputError, match="more than once"):
        read_note_corpus(
            write_jsonl([note_record(1, ["a"]), note_record(1, ["b"])], name="d.jsonl")
        )
    with pytest.raises(BadInputError, match="not found"):
        read_note_corpus(tmp_path / "missing.jsonl")


def test_split_is_by_patient_seeded_and_needs_two(note_records: Path, write_jsonl) -> None:  # type: ignore[no-untyped-def]
    corpus = read_note_corpus(note_records)
    split = split_patients(corpus, seed=3)
    assert split == split_patients(corpus, seed=3)
    assert len(split.held_out) == 1
    assert sorted(split.train + split.held_out) == sorted(corpus.documents)
    held = {split_patients(corpus, seed=s).held_out[0] for s in range(20)}
    assert len(held) > 1  # the seed matters
    one = read_note_corpus(write_jsonl([note_record(1, ["cough"])], name="one.jsonl"))
    with pytest.raises(BadInputError, match="at least 2 patients"):
        split_patients(one, seed=0)


def test_documents_are_framed_and_packed(
    note_records: Path, tokenizer: PreTrainedTokenizerFast
) -> None:
    corpus = read_note_corpus(note_records)
    stream = document_stream(corpus, ["P000000"], tokenizer)
    bos, eos = token_id(tokenizer, BOS_TOKEN), token_id(tokenizer, EOS_TOKEN)
    first = tokenizer(NOTES[0], add_special_tokens=False)["input_ids"]
    assert stream[: len(first) + 2] == [bos, *first, eos]
    assert stream.count(bos) == stream.count(eos) == 2
    blocks = pack_blocks(stream, 16)
    assert blocks.shape == (len(stream) // 16, 16)
    assert blocks.flatten().tolist() == stream[: blocks.numel()]
    chunks = chunk_stream(stream, 16)
    assert sum(c.numel() for c in chunks) == len(stream) - (1 if len(stream) % 16 == 1 else 0)


def test_records_file_is_read_as_written(note_records: Path) -> None:
    lines = note_records.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["patient_id"] == "P000000"
