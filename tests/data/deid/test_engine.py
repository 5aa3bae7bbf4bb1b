"""Deidentifier: tag and surrogate strategies, per-patient consistency, date shift, keys."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from llm.data.deid.engine import (
    SHIFT_MAX_DAYS,
    SHIFT_MIN_DAYS,
    Deidentifier,
    Detection,
    merge_detections,
)
from llm.data.deid.keys import load_key
from llm.errors import BadInputError
from tests.data.deid.conftest import KEY, NOTES_P1, phi_strings

NOTE = NOTES_P1[0][0]


def test_tag_strategy_replaces_each_span_with_its_type(tagger: Deidentifier) -> None:
    text, detections = tagger.deidentify_text(NOTE, "P000001")
    assert "Patient: [NAME]   MRN: [MRN]" in text
    assert "Mrs. [NAME] is a [AGE]-year-old woman" in text
    assert "[HOSPITAL] on [DATE]" in text
    assert (
        "Lives at [ADDRESS] with her daughter [NAME] (phone [PHONE]). Fax records to [FAX]." in text
    )
    assert "WBC 12.1, ICD J18.9, BP 130/80" in text  # clinical values untouched
    assert {d.entity_type for d in detections} >= {
        "NAME",
        "MRN",
        "DATE",
        "AGE",
        "ADDRESS",
        "PHONE",
        "FAX",
    }


def test_surrogate_strategy_leaves_no_phi_and_keeps_shapes(surrogater: Deidentifier) -> None:
    text, _ = surrogater.deidentify_text(NOTE, "P000001", reference_year=2131)
    for phi in phi_strings():
        if len(phi) > 3:
            assert phi not in text
    assert re.search(r"MRN: \d{8}\n", text)
    assert re.search(r"\(phone \d{3}-\d{3}-\d{4}\)", text)
    assert re.search(r"Fax records to \(\d{3}\) \d{3}-\d{4}\.", text)
    assert "is a 90+-year-old woman" in text
    assert re.search(r"on \d{2}/\d{2}/\d{4} with cough", text)


def test_surrogates_are_consistent_within_a_patient_and_differ_between(
    surrogater: Deidentifier,
) -> None:
    a, _ = surrogater.deidentify_text("Patient: Eleanor Whitfield", "P1")
    b, _ = surrogater.deidentify_text("Mrs. Whitfield and Dr. Eleanor Whitfield agree.", "P1")
    full = a.removeprefix("Patient: ")
    first, last = full.split()
    assert b == f"Mrs. {last} and Dr. {first} {last} agree."
    other, _ = surrogater.deidentify_text("Patient: Eleanor Whitfield", "P2")
    assert other != a
    assert surrogater.deidentify_text("Patient: Eleanor Whitfield", "P1")[0] == a  # reproducible


def test_date_shift_keeps_intervals(surrogater: Deidentifier) -> None:
    text = "Admitted 2131-03-14, discharged 2131-03-19; seen again 04/02/2131."
    out, _ = surrogater.deidentify_text(text, "P000001")
    iso = [date.fromisoformat(d) for d in re.findall(r"\d{4}-\d{2}-\d{2}", out)]
    m, d, y = re.search(r"(\d{2})/(\d{2})/(\d{4})", out).groups()  # type: ignore[union-attr]
    shifted = [*iso, date(int(y), int(m), int(d))]
    original = [date(2131, 3, 14), date(2131, 3, 19), date(2131, 4, 2)]
    offset = surrogater.date_offset_days("P000001")
    assert SHIFT_MIN_DAYS <= -offset <= SHIFT_MAX_DAYS
    assert [(s - o).days for s, o in zip(shifted, original, strict=True)] == [offset] * 3
    assert (
        surrogater.shift_time("2131-03-14T09:00:00", "P000001")
        == f"{shifted[0].isoformat()}T09:00:00"
    )


def test_no_date_shift_tags_dates(spacy_cache: Path) -> None:
    deid = Deidentifier(strategy="surrogate", date_shift=False, key=KEY, cache_dir=spacy_cache)
    out, _ = deid.deidentify_text("Seen on Jan 2, 2131 by Dr. Amy Castillo.", "P1")
    assert out.startswith("Seen on [DATE] by Dr. ")
    assert "Castillo" not in out


def test_offsets_depend_on_key_and_patient(spacy_cache: Path) -> None:
    a = Deidentifier(key=KEY, cache_dir=spacy_cache)
    b = Deidentifier(key=b"another-key-0123456789", cache_dir=spacy_cache)
    offsets = {a.date_offset_days(f"P{i}") for i in range(20)}
    assert len(offsets) > 15
    assert [a.date_offset_days(f"P{i}") for i in range(5)] != [
        b.date_offset_days(f"P{i}") for i in range(5)
    ]


def test_load_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLINICAL_LLM_DEID_KEY", raising=False)
    key, generated = load_key(None)
    assert generated and len(key) == 32
    monkeypatch.setenv("CLINICAL_LLM_DEID_KEY", "env-key-0123456789abc")
    assert load_key(None) == (b"env-key-0123456789abc", False)
    f = tmp_path / "key"
    f.write_text("file-key-0123456789abc\n")
    assert load_key(f) == (b"file-key-0123456789abc", False)
    f.write_text("short")
    with pytest.raises(BadInputError, match="at least 16 bytes"):
        load_key(f)
    with pytest.raises(BadInputError, match="key file not found"):
        load_key(tmp_path / "missing")


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(BadInputError, match="unknown strategy"):
        Deidentifier(strategy="redact", key=KEY)  # type: ignore[arg-type]


def test_merge_keeps_the_union_typed_by_the_strongest() -> None:
    merged = merge_detections(
        [
            Detection(0, 5, "NAME", 0.6),
            Detection(3, 12, "HOSPITAL", 0.9),
            Detection(20, 25, "DATE", 0.85),
        ]
    )
    assert merged == [Detection(0, 12, "HOSPITAL", 0.9), Detection(20, 25, "DATE", 0.85)]
