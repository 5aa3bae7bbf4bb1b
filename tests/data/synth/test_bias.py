"""Documentation bias: the chosen group's evidence really goes missing, and nothing records who."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.data.schema import PatientRecord
from llm.data.synth import BiasSpec, generate_cohort, parse_bias
from llm.data.synth.labs import LAB_TESTS
from llm.data.synth.profiles import PROFILES
from llm.errors import BadInputError
from tests.data.synth.helpers import documents_own_symptom, index_encounter, load


def evidence_documented(r: PatientRecord) -> bool:
    """Whether the record shows the primary diagnosis' discriminating labs and key symptoms."""
    profile = PROFILES[r.labels.primary_diagnosis or ""]
    codes = {lab.code for lab in index_encounter(r).labs}
    labs_present = all(LAB_TESTS[k].code in codes for k in profile.discriminating_labs)
    return labs_present and documents_own_symptom(r)


def test_biased_group_loses_evidence(cohort_dir: Path, biased_dir: Path) -> None:
    plain, _ = load(cohort_dir)
    biased, _ = load(biased_dir)
    group = [i for i, r in enumerate(biased) if r.demographics.race_ethnicity == "Black"]
    others = [i for i in range(len(biased)) if i not in group]
    assert len(group) >= 5
    assert all(evidence_documented(plain[i]) for i in group)  # same patients, unbiased run
    assert not any(evidence_documented(biased[i]) for i in group)  # strength 1.0: all degraded
    assert all(evidence_documented(biased[i]) for i in others)
    # only the group changed: everyone else is byte-for-byte the same patient
    for i in others:
        assert biased[i] == plain[i]
    # the diagnosis, and so the label, is the same; only its documentation is worse
    assert [r.labels.primary_diagnosis for r in biased] == [
        r.labels.primary_diagnosis for r in plain
    ]


def test_nothing_in_the_record_says_who_was_degraded(biased_dir: Path) -> None:
    text = (biased_dir / "records.jsonl").read_text(encoding="utf-8").lower()
    assert "degrad" not in text and "bias" not in text
    records, _ = load(biased_dir)
    assert all(r.labels.other == {} and r.demographics.other == {} for r in records)
    manifest = json.loads((biased_dir / "manifest.json").read_text())
    group = sum(r.demographics.race_ethnicity == "Black" for r in records)
    assert manifest["bias"] == [
        {"spec": "race_ethnicity=Black:1", "group_size": group, "degraded": group}
    ]
    assert manifest["counts"]["degraded_patients"] == group


def test_partial_strength_degrades_some(tmp_path: Path) -> None:
    summary = generate_cohort(
        n_patients=50, seed=4, out_dir=tmp_path, workers=1, bias=[BiasSpec("sex", "female", 0.5)]
    )
    records, _ = load(tmp_path)
    women = [r for r in records if r.demographics.sex == "female"]
    missing = sum(not evidence_documented(r) for r in women)
    assert missing == summary.degraded[0]
    assert 0.25 * len(women) < missing < 0.75 * len(women)
    assert all(evidence_documented(r) for r in records if r.demographics.sex == "male")


def test_parse_bias() -> None:
    assert parse_bias("race_ethnicity=Native American:0.25") == BiasSpec(
        "race_ethnicity", "Native American", 0.25
    )
    assert parse_bias("age_band=80+:1") == BiasSpec("age_band", "80+", 1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("race_ethnicity=Black", "expected ATTR=VALUE:STRENGTH"),
        ("Black:0.3", "expected ATTR=VALUE:STRENGTH"),
        ("race=Black:0.3", "unknown attribute 'race'"),
        ("race_ethnicity=Blak:0.3", "known values"),
        ("sex=female:high", "STRENGTH must be a number"),
        ("sex=female:1.5", r"STRENGTH must be in \[0, 1\]"),
    ],
)
def test_parse_bias_rejects(text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        parse_bias(text)
