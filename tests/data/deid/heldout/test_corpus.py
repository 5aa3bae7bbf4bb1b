"""The held-out corpus: reproducible, exact spans, every Safe Harbor kind, held-out names only."""

from __future__ import annotations

import csv
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm.data.deid.evaluate import read_phi_spans
from llm.data.deid.heldout import templates as tpl
from llm.data.deid.heldout.corpus import (
    NAMES_FILE,
    SAFE_HARBOR_KINDS,
    STYLES,
    TERM_KINDS,
    HeldoutCorpus,
    build_corpus,
    entity_for,
    is_latin_script,
)
from llm.data.phi import PHI_ENTITIES

# what each kind's text must look like, whole (so an offset one off fails)
SHAPES = {
    "DATE": r"[\w ,./:-]*\d[\w ,./:-]*",
    "AGE": r"(9\d|1\d\d)",
    "PHONE": r"[\d()+. -]{10,}",
    "FAX": r"[\d()+. -]{10,}",
    "EMAIL": r"[a-z]+\.?[a-z]*\d*@[a-z.-]+\.[a-z]+",
    "SSN": r"\d{3}[- ]?\d{2}[- ]?\d{4}",
    "ZIP": r"\d{5}(-\d{4})?",
    "IP": r"[\d.]+|[0-9a-f:]+",
    "URL": r"\S+\.\S+",
    "CITY": "|".join(tpl.CITIES),
}


def _all_templates() -> list[str]:
    return [t for group in tpl.TEMPLATES.values() for t in group]


@pytest.fixture(scope="module")
def corpus() -> HeldoutCorpus:
    return build_corpus(500, seed=0)


def _heldout() -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    with NAMES_FILE.open(encoding="utf-8") as fh:
        for r in csv.DictReader((x for x in fh if not x.startswith("#")), delimiter="\t"):
            out.setdefault(r["name"].casefold(), set()).add((r["country"], r["region"]))
    return out


def test_same_seed_same_corpus_and_another_seed_another() -> None:
    a, b, c = build_corpus(40, seed=3), build_corpus(40, seed=3), build_corpus(40, seed=4)
    assert [(n.text, n.phi, n.keep) for n in a.notes] == [(n.text, n.phi, n.keep) for n in b.notes]
    assert [n.text for n in a.notes] != [n.text for n in c.notes]
    assert len(a.notes) == 40


def test_spans_are_exact(corpus: HeldoutCorpus) -> None:
    for note in corpus.notes:
        spans = sorted(note.phi + note.keep, key=lambda s: s.start)
        for prev, span in itertools.pairwise(spans):
            assert prev.end <= span.start, "spans never overlap"
        for span in spans:
            value = note.text[span.start : span.end]
            assert value and value == value.strip()
            before = note.text[span.start - 1 : span.start]
            after = note.text[span.end : span.end + 1]
            assert not (before.isalnum() or after.isalnum()), (span.kind, value)
            if span.kind in SHAPES:
                assert re.fullmatch(SHAPES[span.kind], value), (span.kind, value)
        for span in note.keep:
            value = note.text[span.start : span.end]
            if span.kind == "drug":
                assert value in tpl.DRUGS
            elif span.kind == "eponym":
                literal = f"[[{value}|eponym]]"
                assert value in tpl.EPONYMS or any(literal in t for t in _all_templates())


def test_every_safe_harbor_kind_style_and_term_kind_appears(corpus: HeldoutCorpus) -> None:
    kinds = {s.kind for n in corpus.notes for s in n.phi}
    assert kinds == set(SAFE_HARBOR_KINDS)
    assert {n.style for n in corpus.notes} == set(STYLES) and len(STYLES) == 5
    assert {s.kind for n in corpus.notes for s in n.keep} == set(TERM_KINDS)
    assert all(entity_for(k) in PHI_ENTITIES for k in SAFE_HARBOR_KINDS)


def test_names_come_only_from_the_held_out_file_with_their_origin(corpus: HeldoutCorpus) -> None:
    heldout = _heldout()
    for note in corpus.notes:
        for span in note.phi:
            if span.kind != "NAME":
                assert span.country is None
                continue
            words = re.split(r",? |\. ", note.text[span.start : span.end])
            for word in words:
                if len(word) > 1:
                    assert (span.country, span.region) in heldout[word.casefold()], word


def test_every_region_has_enough_name_mentions(corpus: HeldoutCorpus) -> None:
    counts = corpus.name_mentions("region")
    assert len(counts) == 9
    assert min(counts.values()) >= 150, counts


def test_written_spans_file_reads_back_with_origins_and_terms(
    corpus: HeldoutCorpus, tmp_path: Path
) -> None:
    small = HeldoutCorpus(corpus.seed, corpus.notes[:20])
    spans_path = small.write(tmp_path).spans
    gold = read_phi_spans(spans_path)
    assert gold.keys() == small.gold().keys()
    for key, entry in small.gold(types="entity").items():
        assert gold[key].spans == entry.spans
        assert gold[key].origins == entry.origins and gold[key].keep == entry.keep


def test_the_corpus_never_imports_the_recognizers() -> None:
    code = (
        "import sys, llm.data.deid.heldout.corpus\n"
        "bad = [m for m in sys.modules if m.split('.')[-1] in "
        "('recognizers', 'nlp', 'engine', 'ner', 'vocabulary', 'identifiers', 'lexicon')"
        " or m.startswith(('presidio', 'spacy'))]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_names_are_romanised_unless_all_scripts_are_asked_for(corpus: HeldoutCorpus) -> None:
    def names(c: HeldoutCorpus) -> list[str]:
        return [n.text[s.start : s.end] for n in c.notes for s in n.phi if s.kind == "NAME"]

    assert all(is_latin_script(name) for name in names(corpus))
    assert not all(is_latin_script(name) for name in names(build_corpus(300, 0, latin_only=False)))
