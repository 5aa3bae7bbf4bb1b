"""Labels recomputed from the written record (notes and structured fields) equal its labels."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from llm.data.schema import PatientRecord
from llm.data.synth.labels import (
    ReadmissionInputs,
    readmission_points,
    readmission_rule,
    rhythm_rule,
    triage_rule,
)
from llm.data.synth.labs import LAB_TESTS
from llm.data.synth.profiles import PROFILES
from llm.data.synth.readmission_reading import CATEGORY_OF_CODE, read_readmission_inputs
from tests.data.synth.helpers import (
    admission_vitals,
    documents_own_symptom,
    index_encounter,
    load,
    note_of,
    reported_rate,
)


def readmission_inputs_from_text(r: PatientRecord) -> ReadmissionInputs:
    """Everything the readmission rule needs, read from the discharge summary's words."""
    return read_readmission_inputs(note_of(r, "discharge_summary").text)


def test_readmission_rule_from_discharge_summary(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    for r in records:
        facts = readmission_inputs_from_text(r)
        assert readmission_rule(facts) == r.labels.readmission_30d, r.patient_id
        # and the words agree with the structured record
        index = index_encounter(r)
        admit = datetime.fromisoformat(index.time)
        assert facts.age == r.demographics.age
        assert facts.comorbidity_count == sum(not d.primary for d in index.diagnoses)
        assert facts.primary_diagnosis == r.labels.primary_diagnosis
        assert facts.prior_admissions_year == sum(
            e.kind == "inpatient" and (admit - datetime.fromisoformat(e.time)).days <= 365
            for e in r.encounters[:-1]
        )
        assert (
            facts.length_of_stay_days
            == (datetime.fromisoformat(index.end_time or "").date() - admit.date()).days
        )
        end_day = (index.end_time or "")[:10]
        at_discharge = [lab for lab in index.labs if (lab.time or "").startswith(end_day)]
        abnormal = sum(
            isinstance(lab.value, float)
            and not (lab.ref_low or 0) <= lab.value <= (lab.ref_high or 1e9)
            for lab in at_discharge
        )
        assert facts.abnormal_discharge_labs == abnormal


def test_triage_and_rhythm_rules(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    for r in records:
        v = admission_vitals(r)
        level = triage_rule(
            heart_rate=v["heart_rate"],
            sbp=v["sbp"],
            resp_rate=v["resp_rate"],
            spo2=v["spo2"],
            temp_c=v["temp_c"],
        )
        assert level == r.labels.triage_level, r.patient_id
        codes = [d.code for d in index_encounter(r).diagnoses]
        assert rhythm_rule(codes, reported_rate(r)) == r.labels.rhythm, r.patient_id
        primary = next(d.code for d in index_encounter(r).diagnoses if d.primary)
        assert CATEGORY_OF_CODE[primary] == r.labels.primary_diagnosis


def test_discriminating_evidence_is_present_when_not_biased(cohort_dir: Path) -> None:
    records, _ = load(cohort_dir)
    for r in records:
        profile = PROFILES[r.labels.primary_diagnosis or ""]
        codes = {lab.code for lab in index_encounter(r).labs}
        assert {LAB_TESTS[k].code for k in profile.discriminating_labs} <= codes, r.patient_id
        assert documents_own_symptom(r), r.patient_id


@pytest.mark.parametrize(
    ("vitals", "level"),
    [
        ({"heart_rate": 80, "sbp": 75, "resp_rate": 16, "spo2": 97, "temp_c": 37.0}, 1),
        ({"heart_rate": 135, "sbp": 120, "resp_rate": 16, "spo2": 97, "temp_c": 37.0}, 2),
        ({"heart_rate": 105, "sbp": 120, "resp_rate": 16, "spo2": 97, "temp_c": 37.0}, 3),
        ({"heart_rate": 55, "sbp": 120, "resp_rate": 16, "spo2": 97, "temp_c": 37.0}, 4),
        ({"heart_rate": 80, "sbp": 120, "resp_rate": 16, "spo2": 97, "temp_c": 37.0}, 5),
    ],
)
def test_triage_levels(vitals: dict[str, float], level: int) -> None:
    assert triage_rule(**vitals) == level


def test_readmission_points_example() -> None:
    facts = ReadmissionInputs(
        age=82,
        comorbidity_count=4,
        prior_admissions_year=1,
        disposition="home",
        lives_alone=True,
        abnormal_discharge_labs=0,
        length_of_stay_days=3,
        primary_diagnosis="sepsis",
    )
    assert readmission_points(facts) == 2 + 2 + 2 + 0 + 1
    assert readmission_rule(facts) == "yes"
    assert readmission_rule(ReadmissionInputs(40, 0, 0, "home", False, 0, 3, "pneumonia")) == "no"
